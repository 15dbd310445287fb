;; A guest whose start is chosen from outside: the first byte of the file "mode" in its first
;; preopened directory (fd 3), read by the module's start function on every instantiation.
;;   "L": the start function loops forever;
;;   "S": the start function spins for about 15 ms (20,000,000 loop turns), then goes on;
;;   "G": _initialize grows memory a page at a time until refused, then traps (a memory bomb);
;;   anything else, or no file: it starts normally.
;; cap_count reports how many calls this instance served and the input of the one before,
;; which it keeps in memory: a fresh instance always answers {"count":1,"last":null}.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))

  (memory (export "memory") 1)
  (global $count (mut i32) (i32.const 0))

  (data (i32.const 16) "mode")
  (data (i32.const 32) "{\"count\":")
  (data (i32.const 48) ",\"last\":")
  (data (i32.const 56) "null")

  ;; the mode byte lands at 100 (0 when there is no file)
  (func $init
    (local $n i32)
    (i32.store8 (i32.const 100) (i32.const 0))
    (if (i32.eqz (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 4)
                                  (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0)
                                  (i32.const 8)))
      (then
        (i32.store (i32.const 256) (i32.const 100))
        (i32.store (i32.const 260) (i32.const 1))
        (drop (call $fd_read (i32.load (i32.const 8)) (i32.const 256) (i32.const 1) (i32.const 12)))
        (drop (call $fd_close (i32.load (i32.const 8))))))
    (if (i32.eq (i32.load8_u (i32.const 100)) (i32.const 76))  ;; "L"
      (then (loop $forever (br $forever))))
    (if (i32.eq (i32.load8_u (i32.const 100)) (i32.const 83))  ;; "S"
      (then
        (local.set $n (i32.const 20000000))
        (block $spun
          (loop $turn
            (br_if $spun (i32.eqz (local.get $n)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $turn))))))
  (start $init)

  (func (export "_initialize")
    (if (i32.eq (i32.load8_u (i32.const 100)) (i32.const 71))  ;; "G"
      (then
        (loop $more (br_if $more (i32.ge_s (memory.grow (i32.const 1)) (i32.const 0))))
        unreachable)))

  (func (export "cap_abi_version") (result i32) (i32.const 1))

  ;; inputs go to 4096 (at most 1,000 bytes: this guest is for small inputs)
  (func (export "cap_alloc") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 1000)) (then unreachable))
    (i32.const 4096))

  (func $put (param $dst i32) (param $src i32) (param $n i32) (result i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $n))
    (i32.add (local.get $dst) (local.get $n)))

  ;; decimal digits of $n at $dst; returns the end
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
    (i32.add (local.get $dst) (local.get $digits)))

  ;; {"count":N,"last":<the previous input, kept at 2048 with its length at 2044, or null>}
  (func (export "cap_count") (param $in i32) (param $len i32) (result i64)
    (local $p i32)
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (local.set $p (call $put (i32.const 8192) (i32.const 32) (i32.const 9)))
    (local.set $p (call $utoa (global.get $count) (local.get $p)))
    (local.set $p (call $put (local.get $p) (i32.const 48) (i32.const 8)))
    (if (i32.load (i32.const 2044))
      (then (local.set $p (call $put (local.get $p) (i32.const 2048) (i32.load (i32.const 2044)))))
      (else (local.set $p (call $put (local.get $p) (i32.const 56) (i32.const 4)))))
    (i32.store8 (local.get $p) (i32.const 125))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (i32.store (i32.const 2044) (local.get $len))
    (drop (call $put (i32.const 2048) (local.get $in) (local.get $len)))
    (i64.or (i64.shl (i64.const 8192) (i64.const 32))
            (i64.extend_i32_u (i32.sub (local.get $p) (i32.const 8192)))))
)
