# procs.sh -- kill_naming, sourced by tests/run.sh and tests/lib.sh.
#
#   kill_naming STRING...  SIGKILL every process but this shell whose command
#                          line contains one of the STRINGs (a fixed string,
#                          not a pattern: scratch paths hold '.', which pkill
#                          -f would take for any character)
kill_naming() {
    local p c s
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        c=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue # stderr first: a process gone between the glob and the read
        for s in "$@"; do
            [[ "$c" == *"$s"* ]] && { kill -9 "${p#/proc/}" 2>/dev/null; break; }
        done
    done
}
