/*
 * A CUDA program for the sandbox's GPU check, with no toolkit: it loads the driver
 * (libcuda.so.1, which the sandbox binds into an image's job), lists the GPUs it can see,
 * JIT-compiles a PTX kernel through the driver and runs it on the first GPU, and writes what it
 * saw to /job/out/gpu.txt. Exit 0 only if the kernel's results are right.
 * Build: gcc -O2 -o gpu-probe gpu_probe.c -ldl -lpthread
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef void *CUcontext;
typedef void *CUmodule;
typedef void *CUfunction;
typedef unsigned long long CUdeviceptr;
typedef struct { unsigned char bytes[16]; } CUuuid;

static const char *PTX =
    ".version 7.0\n"
    ".target sm_50\n"
    ".address_size 64\n"
    ".visible .entry twice_plus_one(.param .u64 data, .param .u32 n)\n"
    "{\n"
    "  .reg .pred %p<2>;\n"
    "  .reg .b32 %r<8>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  ld.param.u64 %rd1, [data];\n"
    "  ld.param.u32 %r2, [n];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "  setp.ge.u32 %p1, %r1, %r2;\n"
    "  @%p1 bra DONE;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.u32 %rd3, %r1, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  ld.global.u32 %r6, [%rd4];\n"
    "  mad.lo.s32 %r7, %r6, 2, 1;\n"
    "  st.global.u32 [%rd4], %r7;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n";

#define LOAD(name) \
    name = dlsym(lib, #name); \
    if (!name) { fprintf(stderr, "no symbol %s\n", #name); return 3; }
#define CHECK(call) \
    do { CUresult r_ = (call); if (r_ != 0) { fprintf(stderr, "%s failed: %d\n", #call, r_); return 4; } } while (0)

static void *idle(void *arg) { return arg; }

/* What the job can reach, for a report that says why CUDA could not start. */
static void environment(FILE *out) {
    const char *nodes[] = {"/dev/nvidiactl", "/dev/nvidia0", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                           "/proc/driver/nvidia/version", "/proc/driver/nvidia/params", "/sys/bus/pci"};
    for (unsigned i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        int fd = open(nodes[i], O_RDWR | O_CLOEXEC);
        if (fd < 0) fd = open(nodes[i], O_RDONLY | O_CLOEXEC);
        fprintf(out, "open %s: %s\n", nodes[i], fd < 0 ? strerror(errno) : "ok");
        if (fd >= 0) close(fd);
    }
    struct rlimit r;
    getrlimit(RLIMIT_NPROC, &r);
    fprintf(out, "RLIMIT_NPROC=%lld RLIMIT_MEMLOCK=", (long long)r.rlim_cur);
    getrlimit(RLIMIT_MEMLOCK, &r);
    fprintf(out, "%lld uid=%d\n", (long long)r.rlim_cur, (int)getuid());
    pthread_t t;
    int e = pthread_create(&t, NULL, idle, NULL);
    fprintf(out, "pthread_create: %s\n", e ? strerror(e) : "ok");
    if (!e) pthread_join(t, NULL);
    fflush(out);
}

int main(void) {
    FILE *out = fopen("/job/out/gpu.txt", "w");
    if (!out) { perror("/job/out/gpu.txt"); return 2; }
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    fprintf(out, "CUDA_VISIBLE_DEVICES=%s\n", vis ? vis : "(unset)");
    environment(out);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW);
    if (!lib) { fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror()); return 3; }
    CUresult (*cuInit)(unsigned);
    CUresult (*cuDriverGetVersion)(int *);
    CUresult (*cuDeviceGetCount)(int *);
    CUresult (*cuDeviceGet)(CUdevice *, int);
    CUresult (*cuDeviceGetName)(char *, int, CUdevice);
    CUresult (*cuDeviceGetUuid)(CUuuid *, CUdevice);
    CUresult (*cuCtxCreate_v2)(CUcontext *, unsigned, CUdevice);
    CUresult (*cuModuleLoadData)(CUmodule *, const void *);
    CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*cuMemAlloc_v2)(CUdeviceptr *, size_t);
    CUresult (*cuMemcpyHtoD_v2)(CUdeviceptr, const void *, size_t);
    CUresult (*cuMemcpyDtoH_v2)(void *, CUdeviceptr, size_t);
    CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                               unsigned, unsigned, void *, void **, void **);
    CUresult (*cuCtxSynchronize)(void);
    LOAD(cuInit) LOAD(cuDriverGetVersion) LOAD(cuDeviceGetCount) LOAD(cuDeviceGet)
    LOAD(cuDeviceGetName) LOAD(cuDeviceGetUuid) LOAD(cuCtxCreate_v2) LOAD(cuModuleLoadData)
    LOAD(cuModuleGetFunction) LOAD(cuMemAlloc_v2) LOAD(cuMemcpyHtoD_v2) LOAD(cuMemcpyDtoH_v2)
    LOAD(cuLaunchKernel) LOAD(cuCtxSynchronize)
    CHECK(cuInit(0));
    int version = 0, count = 0;
    CHECK(cuDriverGetVersion(&version));
    CHECK(cuDeviceGetCount(&count));
    fprintf(out, "driver_cuda=%d.%d\ndevices=%d\n", version / 1000, (version % 1000) / 10, count);
    for (int i = 0; i < count; i++) {
        CUdevice dev;
        char name[256] = {0};
        CUuuid uuid;
        CHECK(cuDeviceGet(&dev, i));
        CHECK(cuDeviceGetName(name, sizeof name, dev));
        CHECK(cuDeviceGetUuid(&uuid, dev));
        fprintf(out, "device %d: %s GPU-", i, name);
        for (int b = 0; b < 16; b++) {
            fprintf(out, "%02x%s", uuid.bytes[b], (b == 3 || b == 5 || b == 7 || b == 9) ? "-" : "");
        }
        fprintf(out, "\n");
    }
    if (count < 1) { fprintf(stderr, "no GPU visible\n"); return 5; }
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction fn;
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuCtxCreate_v2(&ctx, 0, dev));
    CHECK(cuModuleLoadData(&mod, PTX));
    CHECK(cuModuleGetFunction(&fn, mod, "twice_plus_one"));
    enum { N = 1 << 20 };
    static unsigned host[N];
    for (unsigned i = 0; i < N; i++) host[i] = i;
    CUdeviceptr d;
    CHECK(cuMemAlloc_v2(&d, sizeof host));
    CHECK(cuMemcpyHtoD_v2(d, host, sizeof host));
    unsigned n = N;
    void *args[] = {&d, &n};
    CHECK(cuLaunchKernel(fn, N / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
    CHECK(cuCtxSynchronize());
    CHECK(cuMemcpyDtoH_v2(host, d, sizeof host));
    for (unsigned i = 0; i < N; i++) {
        if (host[i] != 2 * i + 1) {
            fprintf(out, "kernel=wrong at %u: %u\n", i, host[i]);
            fclose(out);
            return 1;
        }
    }
    fprintf(out, "kernel=ok (%d elements)\n", N);
    fclose(out);
    return 0;
}
