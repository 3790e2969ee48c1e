/*
 * source.c -- what every batch source shares (source.h).
 */
#include "train/source.h"

#include <stddef.h>

void weft_source_close(weft_source *s)
{
    if (s)
        s->ops->close(s);
}
