/*
 * le.h -- explicit little-endian encoding of integers in byte buffers.
 *
 * Every on-disk and serialised structure in data/ is written field by field
 * through these helpers, never by copying a C struct, so the format does not
 * depend on the compiler's padding or the host's byte order.
 */
#ifndef WEFT_DATA_LE_H
#define WEFT_DATA_LE_H

#include <stdint.h>

static inline void weft_le_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void weft_le_put64(uint8_t *p, uint64_t v)
{
    weft_le_put32(p, (uint32_t)v);
    weft_le_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t weft_le_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t weft_le_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t weft_le_get64(const uint8_t *p)
{
    return (uint64_t)weft_le_get32(p) | (uint64_t)weft_le_get32(p + 4) << 32;
}

#endif
