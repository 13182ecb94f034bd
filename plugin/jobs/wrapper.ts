/**
 * The POSIX `sh` script every job runs under. It is started detached (its own session and
 * process group, pgid = its pid) and so lives on when the server stops; it alone knows the
 * command's exit status, and it writes it — with the times and whether its own limit or a
 * cancel ended the command — to `exit.json` through a temporary file and a rename, so a reader
 * never sees half a record. Its own time limit holds without any server.
 *
 * Arguments: $1 the job folder, $2 time limit in ms (0: none), $3 grace in ms between SIGTERM
 * and SIGKILL, $4 the command (run by `sh -c`).
 *
 * The wrapper traps TERM (a handler, not an ignore: the command gets the default action), so a
 * TERM to the whole group stops the command but leaves the wrapper to record the end; its
 * time-limit watcher, once it has sent its own TERM, ignores TERM until the grace is over, and is
 * stood down with USR1 once the command ended. A KILL to
 * the group (the grace ran out) takes the wrapper too; whoever sent it records the end instead,
 * from the `cancelled` / `timed_out` marker it left.
 */
export const WRAPPER_SCRIPT = String.raw`
trap 'got=1' TERM INT HUP
dir=$1; limit=$2; grace=$3; cmd=$4
mkdir -p "$dir"
now() { t=$(date +%s%3N 2>/dev/null); case $t in ''|*[!0-9]*) echo "$(date +%s)000" ;; *) echo "$t" ;; esac; }
secs() { echo "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }
# A sleep of $1 ms in the form this system's sleep takes (fractions are not POSIX).
if sleep 0.001 2>/dev/null; then dur() { secs "$1"; }; else dur() { echo $((($1 + 999) / 1000)); }; fi
start=$(now)
# A stop that came before the command started: it is not started at all.
if [ -n "$got" ]; then code=143; else
  sh -c "$cmd" </dev/null >>"$dir/output.log" 2>&1 &
  child=$!
  dog=
  if [ "$limit" -gt 0 ]; then
    (
      trap 'kill -KILL $s 2>/dev/null; exit 0' USR1
      sleep "$(dur "$limit")" & s=$!; wait $s
      : >"$dir/timed_out"
      echo "[nso] time limit of $(secs "$limit") s reached: stopping the job's process group (SIGTERM)" >>"$dir/output.log"
      # Only now does the watcher outlive its own TERM (a cancel before this stops it with the rest).
      trap '' TERM
      kill -TERM 0
      sleep "$(dur "$grace")" & s=$!; wait $s
      echo "[nso] still running after $(secs "$grace") s: SIGKILL" >>"$dir/output.log"
      kill -KILL 0
    ) </dev/null >/dev/null 2>&1 &
    dog=$!
  fi
  while :; do
    wait "$child"; code=$?
    kill -0 "$child" 2>/dev/null || break
  done
  [ -n "$dog" ] && kill -USR1 "$dog" 2>/dev/null
fi
end=$(now)
if [ "$code" -gt 128 ]; then sig=$(kill -l $((code - 128)) 2>/dev/null); fi
if [ -n "$sig" ]; then ec=null; sg="\"$sig\""; else ec=$code; sg=null; fi
to=false; [ -e "$dir/timed_out" ] && to=true
cx=false; [ -e "$dir/cancelled" ] && cx=true
printf '{"exitCode":%s,"signal":%s,"startedAt":%s,"endedAt":%s,"timedOut":%s,"cancelled":%s}\n' "$ec" "$sg" "$start" "$end" "$to" "$cx" >"$dir/exit.json.tmp"
mv -f "$dir/exit.json.tmp" "$dir/exit.json"
`
