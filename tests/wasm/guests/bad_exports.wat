;; Exports with the wrong signatures, and no cap_alloc.
(module
  (memory (export "memory") 1)
  (func (export "cap_abi_version") (result i64) (i64.const 1))
  (func (export "cap_call") (param i32) (result i32) (i32.const 0))
)
