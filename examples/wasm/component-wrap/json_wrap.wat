;; json-wrap: a WebAssembly component (component-v1) written in WAT.
;;
;;   json.wrap  X  ->  {"wrapped": X}
;;
;; A component exports `call: func(input: string) -> string`; the canonical ABI moves the
;; strings, so the core module only needs a `realloc` and a function returning a pointer
;; to (ptr, len). Authors in Python (componentize-py) or JavaScript (componentize-js)
;; get this glue from their toolchain.
(component
  (core module $m
    (memory (export "memory") 1)
    (global $top (mut i32) (i32.const 1024))
    ;; realloc(old_ptr, old_len, align, new_len): a bump allocator reset by each call.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32) (local $end i32)
      (local.set $p (i32.and (i32.add (global.get $top) (i32.const 7)) (i32.const -8)))
      (local.set $end (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
        (then
          (if (i32.lt_s (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end)
                                                                  (i32.shl (memory.size) (i32.const 16)))
                                                          (i32.const 16))
                                              (i32.const 1)))
                        (i32.const 0))
            (then unreachable))))
      (global.set $top (local.get $end))
      (local.get $p))
    (func (export "call") (param $in i32) (param $len i32) (result i32)
      (local $out i32)
      ;; the output goes right after the input; (ptr, len) is stored at 16
      (local.set $out (global.get $top))
      (memory.copy (local.get $out) (i32.const 0) (i32.const 11))
      (memory.copy (i32.add (local.get $out) (i32.const 11)) (local.get $in) (local.get $len))
      (i32.store8 (i32.add (local.get $out) (i32.add (local.get $len) (i32.const 11))) (i32.const 125))
      (global.set $top (i32.add (local.get $out) (i32.add (local.get $len) (i32.const 12))))
      (i32.store (i32.const 16) (local.get $out))
      (i32.store (i32.const 20) (i32.add (local.get $len) (i32.const 12)))
      (i32.const 16))
    ;; called by the host once it has read the result: free everything
    (func (export "post_call") (param i32) (global.set $top (i32.const 1024)))
    (data (i32.const 0) "{\"wrapped\":")
  )
  (core instance $i (instantiate $m))
  (func (export "call") (param "input" string) (result string)
    (canon lift (core func $i "call")
      (memory (core memory $i "memory"))
      (realloc (core func $i "realloc"))
      (post-return (core func $i "post_call"))))
)
