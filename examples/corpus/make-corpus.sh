#!/bin/sh
# make-corpus.sh -- writes the demo corpus: plain English-like text with a
# structure a small model visibly learns within a couple of minutes (a few
# sentence templates over small word lists, and sums that are right), so
# nothing has to be downloaded. Deterministic: its own random generator
# (awk's rand() differs between awks), so every machine gets the same text.
#
#   examples/corpus/make-corpus.sh OUT.txt [LINES]
set -eu
out=${1:?usage: make-corpus.sh OUT.txt [LINES]}
lines=${2:-30000}
awk -v n="$lines" '
function rnd(k) { seed = (seed * 69069 + 1) % 4294967296; return int(seed / 4294967296 * k) }
function pick(list,   a, c) { c = split(list, a, " "); return a[rnd(c) + 1] }
BEGIN {
    seed = 12345
    animals = "cat dog fox owl bear wolf hare crow frog mouse"
    adjs = "quick lazy small big brown white old young clever quiet"
    verbs = "sees chases follows finds helps watches meets likes"
    places = "forest river garden meadow village hill field barn"
    foods = "apples bread honey fish seeds berries corn cheese"
    for (i = 0; i < n; i++) {
        r = rnd(5)
        if (r == 0)
            printf "the %s %s %s the %s %s.\n", pick(adjs), pick(animals), pick(verbs), pick(adjs), pick(animals)
        else if (r == 1) {
            a = rnd(50); b = rnd(50)
            printf "%d plus %d is %d.\n", a, b, a + b
        } else if (r == 2)
            printf "a %s lives in the %s and eats %s.\n", pick(animals), pick(places), pick(foods)
        else if (r == 3)
            printf "in the %s, the %s %s sleeps.\n", pick(places), pick(adjs), pick(animals)
        else
            printf "one %s, two %ss, three %ss.\n", x = pick(animals), x, x
    }
}' >"$out"
