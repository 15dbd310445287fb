;; text-tools: two JSON capabilities written by hand in WebAssembly text, speaking "cap v1".
;;
;;   json.echo   returns its input unchanged.
;;   text.upper  upper-cases (ASCII) every string value of every object member; keys,
;;               escape sequences and non-ASCII bytes are left alone.
;;
;; Memory: page 0 holds nothing; requests live in an arena from 64 KiB up. cap_alloc resets
;; the arena, which frees the previous request and its output (the ABI allows that: an
;; output stays valid only until the next call into the plugin).
(module
  (memory (export "memory") 2)
  (global $arena i32 (i32.const 65536))
  (global $top (mut i32) (i32.const 65536))

  (func (export "cap_abi_version") (result i32) (i32.const 1))

  ;; Bump allocation, growing memory as needed; traps when memory cannot grow (the host
  ;; classifies that as hitting the memory cap).
  (func $alloc (param $len i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr (global.get $top))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.lt_s
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                               (i32.const 65535))
                                      (i32.const 16)))
              (i32.const 0))
          (then unreachable))))
    (global.set $top (local.get $end))
    (local.get $ptr))

  (func (export "cap_alloc") (param $len i32) (result i32)
    (global.set $top (global.get $arena))
    (call $alloc (local.get $len)))

  ;; (ptr << 32) | len
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "cap_echo") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (local.get $ptr) (local.get $len)))

  (func $is_space (param $c i32) (result i32)
    (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
            (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13)))))

  ;; Upper-case out[start, end), skipping the character after each backslash.
  (func $upper_range (param $start i32) (param $end i32)
    (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $start) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $start)))
        (if (i32.eq (local.get $c) (i32.const 92))
          (then (local.set $start (i32.add (local.get $start) (i32.const 2))) (br $next)))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (local.get $start) (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $start (i32.add (local.get $start) (i32.const 1)))
        (br $next))))

  (func (export "cap_upper") (param $in i32) (param $len i32) (result i64)
    (local $out i32) (local $i i32) (local $c i32) (local $start i32) (local $j i32)
    (local.set $out (call $alloc (local.get $len)))
    (memory.copy (local.get $out) (local.get $in) (local.get $len))
    (block $done
      (loop $scan
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $out) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $scan (i32.ne (local.get $c) (i32.const 34)))
        ;; a string starts at $i: find its closing quote
        (local.set $start (local.get $i))
        (block $closed
          (loop $in_string
            (br_if $closed (i32.ge_u (local.get $i) (local.get $len)))
            (local.set $c (i32.load8_u (i32.add (local.get $out) (local.get $i))))
            (if (i32.eq (local.get $c) (i32.const 92))
              (then (local.set $i (i32.add (local.get $i) (i32.const 2))) (br $in_string)))
            (br_if $closed (i32.eq (local.get $c) (i32.const 34)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $in_string)))
        ;; a key is followed by ':'; anything else is a value
        (local.set $j (i32.add (local.get $i) (i32.const 1)))
        (block $seen
          (loop $skip
            (br_if $seen (i32.ge_u (local.get $j) (local.get $len)))
            (br_if $seen (i32.eqz (call $is_space (i32.load8_u (i32.add (local.get $out) (local.get $j))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $skip)))
        (if (i32.or (i32.ge_u (local.get $j) (local.get $len))
                    (i32.ne (i32.load8_u (i32.add (local.get $out) (local.get $j))) (i32.const 58)))
          (then (call $upper_range (i32.add (local.get $out) (local.get $start))
                                   (i32.add (local.get $out) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (call $pack (local.get $out) (local.get $len)))
)
