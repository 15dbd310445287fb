;; A WASI preview 1 reactor that pokes at the sandbox. The input is a JSON string holding a
;; path relative to the first preopened directory (fd 3), e.g. "notes.txt" or "../x".
;; Outputs are {"errno":N} (0 for success), with "data" holding what was read.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  (memory (export "memory") 4)
  (global $top (mut i32) (i32.const 65536))

  (data (i32.const 1024) "{\"errno\":")
  (data (i32.const 1040) ",\"data\":\"")
  (data (i32.const 1056) "\"}")
  (data (i32.const 1064) "written")
  (data (i32.const 1072) "{\"count\":")
  (data (i32.const 1088) ",\"env\":\"")
  (data (i32.const 1104) "boom on stderr\n")

  (func (export "cap_abi_version") (result i32) (i32.const 1))

  (func (export "cap_alloc") (param $len i32) (result i32)
    (global.set $top (i32.add (i32.const 65536) (local.get $len)))
    (i32.const 65536))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func $put (param $dst i32) (param $src i32) (param $n i32) (result i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $n))
    (i32.add (local.get $dst) (local.get $n)))

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

  ;; {"errno":N} at 16384
  (func $errno_reply (param $e i32) (result i64)
    (local $p i32)
    (local.set $p (call $utoa (local.get $e) (call $put (i32.const 16384) (i32.const 1024) (i32.const 9))))
    (i32.store8 (local.get $p) (i32.const 125))
    (call $pack (i32.const 16384) (i32.sub (i32.add (local.get $p) (i32.const 1)) (i32.const 16384))))

  ;; open the path in the input string (quotes stripped) under fd 3; fd lands at 8
  (func $open (param $in i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (call $path_open (i32.const 3) (i32.const 0)
      (i32.add (local.get $in) (i32.const 1)) (i32.sub (local.get $len) (i32.const 2))
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 8)))

  (func (export "cap_read") (param $in i32) (param $len i32) (result i64)
    (local $e i32) (local $p i32)
    (local.set $e (call $open (local.get $in) (local.get $len) (i32.const 0) (i64.const 2)))
    (if (local.get $e) (then (return (call $errno_reply (local.get $e)))))
    ;; iovec at 256: 1024 bytes at 32768
    (i32.store (i32.const 256) (i32.const 32768))
    (i32.store (i32.const 260) (i32.const 1024))
    (local.set $e (call $fd_read (i32.load (i32.const 8)) (i32.const 256) (i32.const 1) (i32.const 12)))
    (drop (call $fd_close (i32.load (i32.const 8))))
    (if (local.get $e) (then (return (call $errno_reply (local.get $e)))))
    (local.set $p (call $utoa (i32.const 0) (call $put (i32.const 16384) (i32.const 1024) (i32.const 9))))
    (local.set $p (call $put (local.get $p) (i32.const 1040) (i32.const 9)))
    (local.set $p (call $put (local.get $p) (i32.const 32768) (i32.load (i32.const 12))))
    (local.set $p (call $put (local.get $p) (i32.const 1056) (i32.const 2)))
    (call $pack (i32.const 16384) (i32.sub (local.get $p) (i32.const 16384))))

  (func (export "cap_write") (param $in i32) (param $len i32) (result i64)
    (local $e i32)
    ;; O_CREAT | O_TRUNC, right FD_WRITE
    (local.set $e (call $open (local.get $in) (local.get $len) (i32.const 9) (i64.const 64)))
    (if (local.get $e) (then (return (call $errno_reply (local.get $e)))))
    (i32.store (i32.const 256) (i32.const 1064))
    (i32.store (i32.const 260) (i32.const 7))
    (local.set $e (call $fd_write (i32.load (i32.const 8)) (i32.const 256) (i32.const 1) (i32.const 12)))
    (drop (call $fd_close (i32.load (i32.const 8))))
    (call $errno_reply (local.get $e)))

  ;; {"count":N,"env":"A=1;B=2;"}
  (func (export "cap_env") (param i32 i32) (result i64)
    (local $count i32) (local $size i32) (local $p i32) (local $i i32) (local $c i32)
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (local.set $count (i32.load (i32.const 8)))
    (local.set $size (i32.load (i32.const 12)))
    (drop (call $environ_get (i32.const 2048) (i32.const 40960)))
    (local.set $p (call $utoa (local.get $count) (call $put (i32.const 16384) (i32.const 1072) (i32.const 9))))
    (local.set $p (call $put (local.get $p) (i32.const 1088) (i32.const 8)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (local.get $size)))
        (local.set $c (i32.load8_u (i32.add (i32.const 40960) (local.get $i))))
        (i32.store8 (local.get $p) (select (i32.const 59) (local.get $c) (i32.eqz (local.get $c))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (local.set $p (call $put (local.get $p) (i32.const 1056) (i32.const 2)))
    (call $pack (i32.const 16384) (i32.sub (local.get $p) (i32.const 16384))))

  (func (export "cap_clock") (param i32 i32) (result i64)
    (call $errno_reply (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 8))))

  ;; sleep 5 s through poll_oneoff (one clock subscription at 512, its event at 600)
  (func $sleep (result i32)
    (i64.store (i32.const 512) (i64.const 0))       ;; userdata
    (i32.store8 (i32.const 520) (i32.const 0))      ;; tag: clock
    (i32.store (i32.const 528) (i32.const 1))       ;; clock id: monotonic
    (i64.store (i32.const 536) (i64.const 5000000000)) ;; timeout, ns
    (i64.store (i32.const 544) (i64.const 0))       ;; precision
    (i32.store16 (i32.const 552) (i32.const 0))     ;; flags: relative
    (call $poll_oneoff (i32.const 512) (i32.const 600) (i32.const 1) (i32.const 700)))

  (func (export "cap_sleep") (param i32 i32) (result i64)
    (call $errno_reply (call $sleep)))

  ;; sleeps, and when sleeping is refused waits by spinning instead
  (func (export "cap_sleep_spin") (param i32 i32) (result i64)
    (drop (call $sleep))
    (loop $forever (br $forever))
    (unreachable))

  (func (export "cap_exit") (param i32 i32) (result i64)
    (call $proc_exit (i32.const 3))
    (unreachable))

  (func (export "cap_stderr_trap") (param i32 i32) (result i64)
    (i32.store (i32.const 256) (i32.const 1104))
    (i32.store (i32.const 260) (i32.const 15))
    (drop (call $fd_write (i32.const 2) (i32.const 256) (i32.const 1) (i32.const 12)))
    (unreachable))
)
