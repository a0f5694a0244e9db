#!/usr/bin/env bash
# Compares conclavectl with etcdctl 3.4 byte for byte: stdout, stderr and exit code of the same
# commands, etcdctl against one fresh conclave server and conclavectl against another with the
# same identity, so revisions and IDs line up. Timings and ports are masked before comparing.
#
# usage: host/ctl/scripts/compare-with-etcdctl.sh   (after `cargo build --bin conclave --bin conclavectl`)
# env:   CONCLAVE (server binary), CONCLAVECTL, ETCDCTL (default: target/debug/..., etcdctl)
set -u
root=$(cd "$(dirname "$0")/../../.." && pwd)
CONCLAVE=${CONCLAVE:-$root/target/debug/conclave}
CONCLAVECTL=${CONCLAVECTL:-$root/target/debug/conclavectl}
ETCDCTL=${ETCDCTL:-etcdctl}
work=$(mktemp -d)
trap 'kill $SA $SB 2>/dev/null; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PA=$(free_port); PB=$(free_port)
"$CONCLAVE" --data-dir "$work/a" --listen-client-urls http://127.0.0.1:$PA \
  --advertise-client-urls http://127.0.0.1:2379 --log-level warn >"$work/a.log" 2>&1 & SA=$!
"$CONCLAVE" --data-dir "$work/b" --listen-client-urls http://127.0.0.1:$PB \
  --advertise-client-urls http://127.0.0.1:2379 --log-level warn >"$work/b.log" 2>&1 & SB=$!
for p in $PA $PB; do
  deadline=$((SECONDS + 10))
  until (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "server on port $p did not start"; exit 1; }
  done
done

pass=0; fail=0
norm() {
  sed -E -e "s/127\.0\.0\.1:($PA|$PB)/EP/g" \
    -e 's/took = [0-9.]+(ns|µs|ms|s)/took = T/g' \
    -e 's/"took":"[0-9.]+(ns|µs|ms|s)"/"took":"T"/g' \
    -e 's/ [0-9.]+(ns|µs|ms|s) \|/ T |/g' \
    -e '/retry_interceptor/d'
}
# run STDIN ARGS...: the same command through both tools.
run() {
  local input="$1"; shift
  printf '%b' "$input" | ETCDCTL_API=3 "$ETCDCTL" --endpoints=127.0.0.1:$PA "$@" >"$work/e.out" 2>"$work/e.err"; local ec=$?
  printf '%b' "$input" | "$CONCLAVECTL" --endpoints=127.0.0.1:$PB "$@" >"$work/c.out" 2>"$work/c.err"; local cc=$?
  for f in e.out c.out e.err c.err; do norm <"$work/$f" >"$work/$f.n"; done
  if cmp -s "$work/e.out.n" "$work/c.out.n" && cmp -s "$work/e.err.n" "$work/c.err.n" && [ $ec = $cc ]; then
    pass=$((pass + 1)); echo "ok   [$ec] $*"
  else
    fail=$((fail + 1)); echo "DIFF $* (exit: etcdctl $ec, conclavectl $cc)"
    diff <(cat "$work/e.out.n"; echo "--stderr--"; cat "$work/e.err.n") \
         <(cat "$work/c.out.n"; echo "--stderr--"; cat "$work/c.err.n") | head -20
  fi
}

run "" put foo bar
run "" put foo bar2 --prev-kv
run "" put k1 v1
run "" put k2 v2 -w json
run "" put k3 v3
run "value from stdin\n" put kin
run "" put kin --ignore-value
run "" put kin --ignore-value -w json --prev-kv
run "" put nokey --ignore-value
run "" put k1 v --ignore-lease --prev-kv
run "" put k1 v --lease 123
run "" put k1 --lease zz
run "" put k1 v --lease zz
run "" put
run "" put k1 v --ignore-value
run "" put '' v
run "" put 'sp ace' "multi\nline\tvalue"
run "" put bin $'\x01\x02\xff'
run "" get foo
run "" get foo -w json
run "" get k --prefix
run "" get k --prefix -w json
run "" get k --prefix --keys-only
run "" get k --prefix --print-value-only
run "" get k --prefix --print-value-only -w json
run "" get k1 k3
run "" get k --prefix --limit 2 -w json
run "" get k --prefix --order DESCEND --sort-by VALUE
run "" get k --prefix --sort-by=CREATE
run "" get k --prefix --sort-by=modify --order=descend
run "" get k --prefix --sort-by=version -w json
run "" get k2 --from-key
run "" get '' --from-key --keys-only
run "" get '' --prefix -w json
run "" get foo --rev 2
run "" get foo --rev 2 -w json
run "" get foo --rev 1000
run "" get foo --consistency s
run "" get foo --consistency x
run "" get foo --order up
run "" get foo --sort-by foo
run "" get foo --prefix --from-key
run "" get a b --prefix
run "" get
run "" get ''
run "" get nothing
run "" get nothing -w json
run "" get foo -w table
run "" get foo -w yaml
run "" get foo --hex
run "" get bin
run "" get bin -w json
run "" get 'sp ace'
run "" del nothing
run "" del nothing -w json
run "" del k3 --prev-kv
run "" del k --prefix --prev-kv -w json
run "" del
run "" del a b c
run "" del a b --prefix
run "" del a --prefix --from-key
run "" put k1 v1
run "" put k2 v2
run "" put k3 v3
run 'value("k1") = "v1"\nversion("k2") = "1"\n\nput k1 "new v"\nget k2\ndel k3\n\nput x y\n\n' txn
run 'mod("k1") > "0"\n\nget k --prefix\nput k9 z --prev-kv\ndel k2 --prev-kv\n\n\n' txn -w json
run 'value("k1") = "nope"\n\nput a b\n\nput c d\n\n' txn -i
run 'value("k1") = "nope"\n\nput a b\n\nput c d\n\n' txn -i -w json
run 'mod("k1") > "0"\n\nput k2 "a \\"quoted\\" \\x41 \\u00e9 \\n"\nget k2\n\n\n' txn
run 'create("k1") = "0"\n\n\nget k1\ndel nothing\n\n' txn
run 'm("k1") != "0"\nc("k1") < "100"\nver("k1") > "0"\nval("k1") = "new v"\n\nget k1 --keys-only\n\n\n' txn
run '\n\n\n' txn
run 'value("k1") = "nope"\n\nput a b\n\nput c d\n' txn
run 'value("k1") = "nope"\n' txn
run 'valu("k1") = "nope"\n\n\n\n' txn
run 'value(k1) = "nope"\n\n\n\n' txn
run 'value("k1" ) = "nope"\n\n\n\n' txn
run 'version("k1") = 0\n\n\n\n' txn
run 'version("k1") = "x"\n\n\n\n' txn
run 'nothing\n\n\n\n' txn
run '\nfoo k1\n\n\n' txn
run '\nput\n\n\n' txn
# (not compared: a bad flag in a txn line, where etcdctl also prints cobra's usage text)
run '\nput k9 a\nput k9 b\n\n\n' txn
run '\nput "\\q" v\n\n\n' txn
run '\n\n\n' txn extra
# (not compared: `txn -w table`, which etcdctl runs before refusing the format)
run "" compaction
run "" compaction x
run "" compaction 1000
run "" compaction 3
run "" compaction 3 -w json
run "" compaction 2
run "" get foo --rev 2
run "" compaction 4 --physical
run "" endpoint status
run "" endpoint status -w json
run "" endpoint status -w table
run "" endpoint health
run "" endpoint health -w json
# (not compared: `endpoint health -w table`, whose column widths follow the timings)
echo "pass=$pass fail=$fail"
[ $fail = 0 ]
