;; Asks for 64 MiB of memory at start.
(module
  (memory (export "memory") 1024)
  (func (export "cap_abi_version") (result i32) (i32.const 1))
  (func (export "cap_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cap_call") (param i32 i32) (result i64) (i64.const 0))
)
