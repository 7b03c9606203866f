# Scenario 7 of issue 5, explicit rollback: after switches to 1 (A) and 2
# (B), `windlassctl rollback 1` goes back to A, running only A's plan.
set -u
out=$1
windlassctl switch 2 > "$out/switch-b.out" 2>&1
echo $? > "$out/switch-b.rc"
windlassctl rollback 1 > "$out/rollback.out" 2> "$out/rollback.err"
echo $? > "$out/rollback.rc"
podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' web > "$out/web-env"
windlassctl --json status > "$out/status.json"
true
