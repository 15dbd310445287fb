;; Imports the host must refuse: a function from outside WASI, and a WASI socket call.
(module
  (import "env" "system" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "cap_abi_version") (result i32) (i32.const 1))
  (func (export "cap_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "cap_call") (param i32 i32) (result i64) (i64.const 0))
)
