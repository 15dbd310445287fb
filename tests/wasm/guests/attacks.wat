;; Guests that misbehave, one export each; every test builds this file with wat2wasm.
;; No imports: this is the pure-compute attack surface.
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 4096))
  (global $count (mut i32) (i32.const 0))

  (data (i32.const 16) "{not json")
  (data (i32.const 32) "{\"code\":\"NOT_ALLOWED\",\"message\":\"nope\",\"hint\":\"ask first\"}")
  (data (i32.const 112) "{\"count\":")
  (data (i32.const 128) "\ff\fe")
  (data (i32.const 136) "plain text failure")

  (func (export "cap_abi_version") (result i32) (i32.const 1))

  (func $alloc (param $len i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $top))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                                                                (i32.shl (memory.size) (i32.const 16)))
                                                        (i32.const 16))
                                            (i32.const 1)))
                      (i32.const 0))
          (then unreachable))))
    (global.set $top (local.get $end))
    (local.get $ptr))

  (func (export "cap_alloc") (param $len i32) (result i32)
    (global.set $top (i32.const 4096))
    (call $alloc (local.get $len)))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; decimal digits of $n at $dst; returns how many
  (func $utoa (param $n i32) (param $dst i32) (result i32)
    (local $digits i32) (local $t i32) (local $i i32)
    (local.set $t (local.get $n))
    (loop $count_digits
      (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
      (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $count_digits (i32.ne (local.get $t) (i32.const 0))))
    (local.set $i (local.get $digits))
    (loop $write
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $write (i32.ne (local.get $i) (i32.const 0))))
    (local.get $digits))

  (func (export "cap_echo") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (local.get $ptr) (local.get $len)))

  ;; an infinite loop
  (func (export "cap_spin") (param i32 i32) (result i64)
    (loop $forever (br $forever))
    (unreachable))

  ;; a cost chosen by the input: the decimal digits in it give a number of empty loop turns,
  ;; then the input is echoed; an input starting "-" loops forever
  (func (export "cap_work") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $n i32) (local $c i32)
    (if (i32.and (i32.gt_u (local.get $len) (i32.const 0))
                 (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 45)))
      (then (loop $forever (br $forever))))
    (block $parsed
      (loop $digits
        (br_if $parsed (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))
                               (i32.const 48)))
        (if (i32.lt_u (local.get $c) (i32.const 10))
          (then (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $c)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digits)))
    (block $spun
      (loop $turn
        (br_if $spun (i32.eqz (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $turn)))
    (call $pack (local.get $ptr) (local.get $len)))

  ;; a memory bomb: grow a page at a time until refused, then give up with a trap
  (func (export "cap_grow") (param i32 i32) (result i64)
    (loop $more (br_if $more (i32.ge_s (memory.grow (i32.const 1)) (i32.const 0))))
    (unreachable))

  ;; unbounded recursion (not a tail call: the stack grows)
  (func $recurse (export "cap_recurse") (param $a i32) (param $b i32) (result i64)
    (i64.add (call $recurse (local.get $a) (local.get $b)) (i64.const 1)))

  ;; integer division by zero, the divisor computed at run time
  (func (export "cap_trap") (param $a i32) (param $b i32) (result i64)
    (i64.extend_i32_u (i32.div_u (i32.const 1) (i32.sub (local.get $b) (local.get $b)))))

  ;; claims a 100 MiB output
  (func (export "cap_giant") (param i32 i32) (result i64)
    (call $pack (i32.const 0) (i32.const 104857600)))

  ;; a real 2 MB JSON string: "aaaa...a"
  (func (export "cap_big") (param i32 i32) (result i64)
    (local $out i32)
    (local.set $out (call $alloc (i32.const 2000002)))
    (memory.fill (local.get $out) (i32.const 97) (i32.const 2000002))
    (i32.store8 (local.get $out) (i32.const 34))
    (i32.store8 (i32.add (local.get $out) (i32.const 2000001)) (i32.const 34))
    (call $pack (local.get $out) (i32.const 2000002)))

  (func (export "cap_badjson") (param i32 i32) (result i64)
    (call $pack (i32.const 16) (i32.const 9)))

  (func (export "cap_notutf8") (param i32 i32) (result i64)
    (call $pack (i32.const 128) (i32.const 2)))

  ;; an output range past the end of memory
  (func (export "cap_oob") (param i32 i32) (result i64)
    (call $pack (i32.const 65530) (i32.const 100)))

  ;; the guest reports an error: JSON with a code, and plain text
  (func (export "cap_fail") (param i32 i32) (result i64)
    (i64.or (call $pack (i32.const 32) (i32.const 58)) (i64.const 0x80000000)))
  (func (export "cap_fail_text") (param i32 i32) (result i64)
    (i64.or (call $pack (i32.const 136) (i32.const 18)) (i64.const 0x80000000)))

  ;; state that survives between calls only in a reused instance: {"count":N}
  (func (export "cap_count") (param i32 i32) (result i64)
    (local $out i32) (local $n i32)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (local.set $out (call $alloc (i32.const 24)))
    (memory.copy (local.get $out) (i32.const 112) (i32.const 9))
    (local.set $n (call $utoa (global.get $count) (i32.add (local.get $out) (i32.const 9))))
    (i32.store8 (i32.add (local.get $out) (i32.add (local.get $n) (i32.const 9))) (i32.const 125))
    (call $pack (local.get $out) (i32.add (local.get $n) (i32.const 10))))
)
