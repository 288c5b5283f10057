# shellcheck shell=bash
# A small job pool for .ci/run, sourced by it.
#
#   job CMD [ARGS...]   queue a command (a program or a shell function)
#   run_jobs N          run the queue N at a time, then return
#
# Each job runs in a subshell with the script's set -euo pipefail, stdin
# from /dev/null and its output in its own log. The logs are printed in
# queue order (a job's log as soon as it and every job before it are done),
# each followed by its exit status and wall time; output of two jobs never
# interleaves. run_jobs waits on every job by pid and checks its status
# (wait -n -p, bash 5.1): when any job fails, the others still finish and
# are shown, then the failed commands are listed and run_jobs exits 1.

jobs_cmd=()

job() {
  jobs_cmd+=("$(printf '%q ' "$@")")
}

run_jobs() {
  local par=$1 n=${#jobs_cmd[@]} logs next=0 running=0 shown=0 pid rc i
  local -A index_of=()
  local -a status=() started=() took=() failed=()
  logs=$(mktemp -d)
  while [ "$shown" -lt "$n" ]; do
    while [ "$running" -lt "$par" ] && [ "$next" -lt "$n" ]; do
      started[next]=$EPOCHREALTIME
      (eval "${jobs_cmd[next]}") </dev/null >"$logs/$next.log" 2>&1 &
      index_of[$!]=$next
      next=$((next + 1))
      running=$((running + 1))
    done
    rc=0 pid=
    wait -n -p pid || rc=$?
    if [ -z "${pid:-}" ] || [ -z "${index_of[$pid]+x}" ]; then
      echo "run_jobs: wait returned $rc for no job of ours" >&2
      exit 1
    fi
    i=${index_of[$pid]}
    status[i]=$rc
    took[i]=$(awk -v a="${started[i]}" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    running=$((running - 1))
    # Show every finished job not yet shown whose predecessors are shown.
    while [ "$shown" -lt "$n" ] && [ -n "${status[shown]+x}" ]; do
      echo "+ ${jobs_cmd[shown]}"
      cat "$logs/$shown.log"
      if [ "${status[shown]}" -eq 0 ]; then
        echo "   (ok, ${took[shown]}s)"
      else
        echo "   (FAILED with exit status ${status[shown]}, ${took[shown]}s)"
        failed+=("${jobs_cmd[shown]}")
      fi
      shown=$((shown + 1))
    done
  done
  rm -rf "$logs"
  jobs_cmd=()
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "== ${#failed[@]} of $n jobs FAILED (their output is above):"
    printf '  %s\n' "${failed[@]}"
    exit 1
  fi
}
