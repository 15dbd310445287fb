;; A component that imports an interface the host never links.
(component
  (import "evil:net/socket" (instance $net (export "connect" (func (param "host" string)))))
  (core module $m
    (memory (export "memory") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (func (export "call") (param i32 i32) (result i32) (i32.const 16))
  )
  (core instance $i (instantiate $m))
  (func (export "call") (param "input" string) (result string)
    (canon lift (core func $i "call") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
)
