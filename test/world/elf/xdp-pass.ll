; A minimal XDP program (returns XDP_PASS) as LLVM IR: llc turns it into the ELF object
; that bpftool loads in test/kernel/owners.test.ts (no clang needed).
target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
target triple = "bpf"

@_license = dso_local global [4 x i8] c"GPL\00", section "license", align 1
@llvm.used = appending global [2 x i8*] [i8* getelementptr inbounds ([4 x i8], [4 x i8]* @_license, i32 0, i32 0), i8* bitcast (i32 (i8*)* @xdp_pass to i8*)], section "llvm.metadata"

define dso_local i32 @xdp_pass(i8* nocapture readnone %ctx) section "xdp" {
  ret i32 2
}
