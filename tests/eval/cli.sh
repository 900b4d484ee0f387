#!/bin/sh
# tests/eval/cli.sh APD_EVAL: command-line contract of apd-eval (exit codes, messages naming
# files). Fast: nothing is trained.
set -u
E="$1"
fail=0
expect() { # expect CODE PATTERN ARGS...
    want="$1"; pat="$2"; shift 2
    out=$("$E" "$@" 2>&1); got=$?
    if [ "$got" != "$want" ]; then echo "FAIL: apd-eval $* -> exit $got, want $want: $out"; fail=1; return; fi
    if [ -n "$pat" ] && ! printf '%s' "$out" | grep -q -- "$pat"; then
        echo "FAIL: apd-eval $* -> output lacks '$pat': $out"; fail=1; return; fi
    echo "ok: apd-eval $* -> $got"
}
expect 0 "usage: apd-eval" --help
expect 0 "apd-eval (libapd)" --version
expect 2 "--test SPEC is required"
expect 2 "no input" --test fashion-mnist
expect 2 "unrecognized" --bogus
expect 2 "needs --train" --random-real 10 --test fashion-mnist
expect 2 "bad value 'x'" x.apd --test fashion-mnist --epochs x
expect 2 "bad value '-3' (an integer 1..1000)" x.apd --test fashion-mnist --runs -3
# Numbers outside an option's range (saturated ones too) name the option and the range; a huge
# --runs used to fail later as "out of memory", a huge --epochs wrapped round to no training.
expect 2 "--epochs 0 is out of range (1..1000000)" x.apd --test fashion-mnist --epochs 0
expect 2 "--epochs 4294967295 is out of range (1..1000000)" x.apd --test fashion-mnist --epochs 4294967295
expect 2 "--runs 4294967295 is out of range (1..1000)" x.apd --test fashion-mnist --runs 4294967295
expect 2 "--runs 99999999999999999999 is out of range (1..1000)" x.apd --test fashion-mnist --runs 99999999999999999999
expect 2 "--threads 257 is out of range (1..256)" x.apd --test fashion-mnist --threads 257
expect 2 "--depth 9 is out of range (1..8)" x.apd --test fashion-mnist --depth 9
expect 2 "--width 65537 is out of range (1..65536)" x.apd --test fashion-mnist --width 65537
expect 2 "--batch 4294967296 is out of range" x.apd --test fashion-mnist --batch 4294967296
expect 2 "bad value" x.apd --test fashion-mnist --lr -1
expect 2 "unknown op" x.apd --test fashion-mnist --dsa-strategy color_zoom
expect 2 "not both" x.apd --random-real 3 --train fashion-mnist --test fashion-mnist
expect 1 "/nonexistent/x.apd" /nonexistent/x.apd --test fashion-mnist
expect 1 "no/such/dir" --random-real 10 --train cifar10:/no/such/dir --test cifar10:/no/such/dir
exit $fail
