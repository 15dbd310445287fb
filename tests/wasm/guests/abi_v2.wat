;; Claims an ABI version this host does not speak.
(module
  (memory (export "memory") 1)
  (func (export "cap_abi_version") (result i32) (i32.const 2))
  (func (export "cap_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cap_call") (param i32 i32) (result i64) (i64.const 0))
)
