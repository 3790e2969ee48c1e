# Makefile -- builds libweft (static and shared), the programs in tools/, the
# tests, and weft.pc. `make help` lists the targets.
#
# Dependencies come from pkg-config (and mpicc as a fallback for MPI), never
# from hard-coded paths. Missing Debian packages are installed first by
# mk/deps.sh (see `make deps`). CUDA is optional and found at $(CUDA_HOME).

VERSION   := 0.1.0
PREFIX    ?= /usr/local
CUDA_HOME ?= /usr/local/cuda
CC        := gcc
FUZZ_CC   := clang
SAN       ?=

# A sanitizer build lives in its own tree so its objects never mix with the
# normal ones: `make SAN=address,undefined test`.
ifeq ($(SAN),)
BUILD ?= build
else
BUILD ?= build-san
endif

LIB_DIRS := runtime collectives kernels data parallel model checkpoint train
LIB_SRCS := $(sort $(wildcard $(addsuffix /*.c,$(LIB_DIRS))))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
# The public API: the headers `make install` installs (under include/weft/,
# keeping these paths) and weft.h includes. A public header includes only
# public headers, and marks its functions and data WEFT_API (runtime/api.h):
# the library is compiled with -fvisibility=hidden, so nothing else is
# exported from libweft.so (tests/build/test_install.sh checks both). The
# $(wildcard) entries are headers still to come; each new public header is
# one more name here.
PUBLIC_HDRS := weft.h \
    runtime/api.h runtime/error.h runtime/log.h runtime/config.h runtime/ctx.h \
    runtime/dtype.h runtime/shard.h runtime/rng.h runtime/timer.h runtime/trace.h \
    runtime/tensor.h runtime/device.h runtime/cli.h runtime/sched.h runtime/report.h \
    collectives/comm.h \
    kernels/kernels.h \
    data/manifest.h data/loader.h data/tokenizer.h \
    parallel/mesh.h parallel/dp.h parallel/pipeline.h \
    model/model.h model/lora.h model/gpt.h model/llama.h model/lm.h model/optim.h model/generate.h \
    checkpoint/ckpt.h checkpoint/state.h \
    train/source.h train/token_source.h train/synthetic_source.h train/trainer.h train/memory.h
TOOL_SRCS := $(sort $(wildcard tools/weft-*.c))
TOOLS    := $(TOOL_SRCS:tools/%.c=$(BUILD)/bin/%)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/%.c=$(BUILD)/tests/%)
MPI_TEST_SRCS := $(sort $(wildcard tests/mpi/*.c))
MPI_TEST_BINS := $(MPI_TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
MODEL_TEST_SRCS := $(sort $(wildcard tests/model/*.c))
MODEL_TEST_BINS := $(MODEL_TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TRAIN_TEST_SRCS := $(sort $(wildcard tests/train/*.c))
TRAIN_TEST_BINS := $(TRAIN_TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/%.c=$(BUILD)/tests/%)
EXAMPLE_SRCS := $(sort $(wildcard examples/*/*.c))
EXAMPLES := $(foreach f,$(EXAMPLE_SRCS),$(BUILD)/examples/$(notdir $(f:.c=)))
BENCH_SRCS := $(sort $(wildcard bench/bench_*.c))
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

# Recursively expanded (=) so pkg-config runs only after deps are in place.
# hdf5-openmpi is Debian's parallel HDF5 (H5Pset_fapl_mpio), for checkpoints;
# libsodium signs them (Ed25519, checkpoint/sign.c).
PKGS        = ompi-c libxxhash openblas hdf5-openmpi libsodium
DEP_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null || mpicc --showme:compile)
DEP_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null || mpicc --showme:link)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)
# oneDNN (Debian: libdnnl-dev) ships no pkg-config file. Its Debian build
# runs on OpenMP (libgomp), whose thread count kernels/matmul_dnnl.c sets.
DNNL_LIBS   := -ldnnl -lgomp

WARN    := -Wall -Wextra -Wformat=2 -Wno-missing-field-initializers
ifeq ($(CI),true)
WARN    += -Werror
endif
# Invariant checks at objects' state transitions (runtime/invariant.h): on
# unless INVARIANTS=0.
INVARIANTS ?= 1
SANFLAGS := $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all)
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -I. $(WARN) $(CFLAGS) $(SANFLAGS) $(DEP_CFLAGS) \
             -DWEFT_VERSION='"$(VERSION)"' -DWEFT_INVARIANTS=$(INVARIANTS) -MMD -MP
ALL_LDLIBS = $(DEP_LIBS) $(DNNL_LIBS) $(IBVERBS_LIBS) -ldl -lpthread -lm


.PHONY: examples
.PHONY: gpu-tests
.PHONY: all lib tools tests test faults demo demo-llama deps npm-deps install uninstall clean help fuzz bench public-headers
.DEFAULT_GOAL := all
# Objects reached through pattern rules are not intermediate files to delete.
.SECONDARY:

all: lib tools examples $(BUILD)/weft.pc

help:
	@echo "make            build $(BUILD)/lib/libweft.{a,so}, $(BUILD)/bin/*, $(BUILD)/weft.pc"
	@echo "make test       build and run the whole test suite (ends 'N passed, N failed')"
	@echo "make faults N=100 SEED=1   the fault campaign: N randomised trials (docs/operations.md)"
	@echo "make demo       run the built-in demo on 2 ranks"
	@echo "make demo-llama the same demo with a Llama of the same size"
	@echo "make deps       install the Debian packages in mk/debian-packages.txt"
	@echo "make npm-deps   install the npm packages of the tokenizer tests under $(BUILD)/npm"
	@echo "make install PREFIX=DIR   install the public headers, libraries, programs, weft.pc"
	@echo "make SAN=address,undefined test   the suite under sanitizers (tree: build-san/)"
	@echo "make clean"

# --- dependencies --------------------------------------------------------
DEPS_STAMP := $(BUILD)/.deps-ok
$(DEPS_STAMP): mk/debian-packages.txt mk/deps.sh
	@mk/deps.sh ensure
	@mkdir -p $(@D) && touch $@

deps:
	mk/deps.sh install

# --- the source commit ------------------------------------------------------
# Every checkpoint records the commit it was built from (checkpoint/seal.c):
# `git describe --always --dirty` at build time, written to a header that
# changes only when the commit does (so only seal.o is rebuilt). Outside a
# git tree (a release tarball) it is SOURCE_COMMIT if given, else "unknown".
SOURCE_COMMIT ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)
COMMIT_HDR := $(BUILD)/gen/source_commit.h
.PHONY: FORCE
$(COMMIT_HDR): FORCE
	@mkdir -p $(@D)
	@printf '#define WEFT_SOURCE_COMMIT "%s"\n' '$(subst ','',$(subst ",,$(subst \,,$(SOURCE_COMMIT))))' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/obj/checkpoint/seal.o: $(COMMIT_HDR)
$(BUILD)/obj/checkpoint/seal.o: ALL_CFLAGS += -I$(BUILD)/gen

# The npm packages the tokenizer tests compare with and the tokenizer
# benchmark runs beside (mk/npm/package-lock.json), under $(BUILD)/npm.
npm-deps: | $(DEPS_STAMP)
	@mk/npm-deps.sh $(BUILD)/npm

# --- libibverbs (optional) ------------------------------------------------
# With its headers present (Debian: libibverbs-dev), the ib backend talks to
# RDMA devices through collectives/ib_verbs.c; without them it is built
# against its test fake only and comm.backend=ib says the build lacks it.
ifneq ($(wildcard /usr/include/infiniband/verbs.h),)
$(BUILD)/obj/collectives/ib_verbs.o: ALL_CFLAGS += -DWEFT_HAVE_IBVERBS
IBVERBS_LIBS := -libverbs
endif

# --- CUDA (optional) ------------------------------------------------------
# With the CUDA toolkit's nccl.h present, the nccl backend is compiled
# against the real headers; it opens libcudart/libnccl at run time, so
# libweft never links them (see collectives/backend_nccl.c). CUDA=0 skips it.
# tests/gpu/*.c are GPU test programs linked with libcudart; they are built
# with the tests whenever the toolkit is here and run by tests/gpu/run.sh on
# a machine with a GPU.
ifneq ($(CUDA),0)
# The device layer's cuda implementation (runtime/device_cuda.c) likewise
# needs only cuda_runtime_api.h: it opens libcudart at run time.
# The nccl backend takes the runtime from it (runtime/cudart.h), so it is
# compiled against NCCL only where the runtime's header is here too.
ifneq ($(wildcard $(CUDA_HOME)/include/cuda_runtime_api.h),)
$(BUILD)/obj/runtime/device_cuda.o: ALL_CFLAGS += -DWEFT_HAVE_CUDA -isystem $(CUDA_HOME)/include
ifneq ($(wildcard $(CUDA_HOME)/include/nccl.h),)
$(BUILD)/obj/collectives/backend_nccl.o: ALL_CFLAGS += -DWEFT_HAVE_NCCL -DWEFT_HAVE_CUDA -isystem $(CUDA_HOME)/include
GPU_TEST_BINS := $(patsubst tests/gpu/%.c,$(BUILD)/tests/gpu/%,$(wildcard tests/gpu/*.c))
endif
endif
endif

# The CUDA kernels (kernels/cuda/*.cu) are built with nvcc, whenever it is
# at CUDA_HOME, into their own library, libweft-cuda.so, for Ampere (sm_80)
# and Hopper (sm_90, plus its PTX for later GPUs). libweft never links it:
# the device layer opens it at run time (kernels/cuda/cuda_ops.h), so a
# machine without CUDA runs the same programs. It links the shared CUDA
# runtime (one runtime per process, the device layer's) and cuBLASLt.
NVCC := $(CUDA_HOME)/bin/nvcc
ifneq ($(CUDA),0)
ifneq ($(wildcard $(NVCC)),)
CUDA_OBJS := $(patsubst %.cu,$(BUILD)/obj/%.o,$(wildcard kernels/cuda/*.cu))
CUDA_LIB  := $(BUILD)/lib/libweft-cuda.so
endif
endif
NVCC_ARCH  := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
NVCC_FLAGS  = -std=c++17 -O3 -I. $(NVCC_ARCH) -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra \
              $(if $(filter true,$(CI)),-Werror all-warnings -Xcompiler -Werror) -MMD -MP

$(BUILD)/obj/kernels/cuda/%.o: kernels/cuda/%.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

all: $(CUDA_LIB)

$(CUDA_LIB): $(CUDA_OBJS)
	@mkdir -p $(@D)
	$(NVCC) -shared -cudart shared -o $@ $^ -L$(CUDA_HOME)/lib64 -lcublasLt -Xlinker -rpath,$(CUDA_HOME)/lib64

# kernels_check needs only the f64 CPU kernels (and BLAS, linked statically)
# beside the CUDA runtime: a GPU machine without MPI, HDF5 or oneDNN runs it
# (and libweft-cuda.so) as they are copied there.
$(BUILD)/tests/gpu/kernels_check: tests/gpu/kernels_check.c $(BUILD)/obj/kernels/ops_f64.o
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -isystem $(CUDA_HOME)/include -o $@ $^ $(shell pkg-config --variable=libdir openblas)/libopenblas.a \
	    -L$(CUDA_HOME)/lib64 -lcudart -Wl,-rpath,$(CUDA_HOME)/lib64 -ldl -lpthread -lm

# device_check likewise links only the device layer and what it uses
# (errors, logging, configuration) beside the CUDA runtime.
DEVICE_CHECK_OBJS := $(addprefix $(BUILD)/obj/runtime/,device.o device_cpu.o copy_stream.o device_cuda.o error.o log.o config.o readfile.o \
    invariant.o)
$(BUILD)/tests/gpu/device_check: tests/gpu/device_check.c $(DEVICE_CHECK_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -isystem $(CUDA_HOME)/include -o $@ $^ -L$(CUDA_HOME)/lib64 -lcudart -Wl,-rpath,$(CUDA_HOME)/lib64 \
	    -ldl -lpthread -lm

$(BUILD)/tests/gpu/%: tests/gpu/%.c $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -isystem $(CUDA_HOME)/include -o $@ $< $(BUILD)/lib/libweft.a $(ALL_LDLIBS) \
	    -L$(CUDA_HOME)/lib64 -lcudart -Wl,-rpath,$(CUDA_HOME)/lib64

gpu-tests: $(GPU_TEST_BINS) $(CUDA_LIB)

# --- library -------------------------------------------------------------
lib: $(BUILD)/lib/libweft.a $(BUILD)/lib/libweft.so

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Library objects export only what is marked WEFT_API. They depend on the
# Makefile so that a build tree from before a change of flags like this one
# is rebuilt rather than linked into a libweft.so that exports everything.
$(LIB_OBJS): ALL_CFLAGS += -fvisibility=hidden
$(LIB_OBJS): Makefile

$(BUILD)/lib/libweft.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libweft.so: $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libweft.so.0 $(SANFLAGS) -o $@ $^ $(ALL_LDLIBS)

$(BUILD)/weft.pc: mk/weft.pc.in Makefile | $(DEPS_STAMP)
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@IBVERBS_LIBS@|$(IBVERBS_LIBS)|' $< > $@

# --- programs --------------------------------------------------------------
tools: $(TOOLS)

$(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $< $(BUILD)/lib/libweft.a $(ALL_LDLIBS)

# Each examples/NAME/NAME.c is a program of its own: $(BUILD)/examples/NAME.
examples: $(EXAMPLES)

define example_rule
$(BUILD)/examples/$(notdir $(1:.c=)): $(BUILD)/obj/$(1:.c=.o) $(BUILD)/lib/libweft.a
	@mkdir -p $$(@D)
	$$(CC) $$(SANFLAGS) -o $$@ $$< $(BUILD)/lib/libweft.a $$(ALL_LDLIBS)
endef
$(foreach f,$(EXAMPLE_SRCS),$(eval $(call example_rule,$(f))))

# --- tests -----------------------------------------------------------------
tests: all $(UNIT_BINS) $(MPI_TEST_BINS) $(MODEL_TEST_BINS) $(TRAIN_TEST_BINS) $(FUZZ_BINS) $(BENCH_BINS) $(GPU_TEST_BINS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $< $(BUILD)/lib/libweft.a $(CMOCKA_LIBS) $(ALL_LDLIBS)

$(BUILD)/tests/mpi/%: $(BUILD)/obj/tests/mpi/%.o $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $< $(BUILD)/lib/libweft.a $(ALL_LDLIBS)

# tests/train/*.c are programs the training tests' scripts run
# (runfile_kind: what runtime/runfiles.h says of each file of a run.dir).
$(BUILD)/tests/train/%: $(BUILD)/obj/tests/train/%.o $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $< $(BUILD)/lib/libweft.a $(ALL_LDLIBS)

# tests/model/*.c are programs the model tests' scripts run (a model's
# forward dumped for an independent reference: tests/model/test_*.sh).
$(BUILD)/tests/model/%: $(BUILD)/obj/tests/model/%.o $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $< $(BUILD)/lib/libweft.a $(ALL_LDLIBS)

# Fuzz targets are built with clang's libFuzzer, together with only the
# sources they exercise (listed per target below), so they need no MPI.
FUZZ_DEPS_fuzz_ini := runtime/config.c runtime/readfile.c runtime/error.c runtime/log.c
# (data fuzz targets: add their FUZZ_DEPS_ lines here)
FUZZ_DEPS_fuzz_shard_header := data/shard.c runtime/error.c runtime/log.c
FUZZ_DEPS_fuzz_manifest := data/manifest.c runtime/readfile.c runtime/durable.c runtime/fault.c runtime/error.c runtime/log.c
FUZZ_DEPS_fuzz_latest := checkpoint/latest.c runtime/error.c runtime/log.c
FUZZ_DEPS_fuzz_ckpt_attrs := checkpoint/prov.c runtime/error.c runtime/log.c
FUZZ_DEPS_fuzz_loader_state := data/loader.c runtime/invariant.c data/reader.c data/shard.c data/shard_cache.c data/manifest.c runtime/readfile.c \
    data/shuffle.c data/blend.c runtime/durable.c runtime/fault.c runtime/error.c runtime/log.c runtime/timer.c
FUZZ_DEPS_fuzz_tokenizer := data/bpe.c data/bpe_load.c runtime/readfile.c data/tok_json.c data/pretok.c data/unicode_tables.c \
    data/tokenizer.c runtime/error.c runtime/log.c
FUZZ_DEPS_fuzz_safetensors := checkpoint/safetensors.c runtime/durable.c runtime/fault.c runtime/json.c runtime/dtype.c runtime/error.c runtime/log.c
.SECONDEXPANSION:
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c $$(FUZZ_DEPS_$$*) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined \
	    $(shell pkg-config --cflags libxxhash 2>/dev/null) -o $@ $^ $(shell pkg-config --libs libxxhash 2>/dev/null) -lm -lpthread

fuzz: $(FUZZ_BINS)

# Benchmarks are built with the tests but only run by hand (see bench/README.md).
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/lib/libweft.a
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -o $@ $< $(BUILD)/lib/libweft.a $(ALL_LDLIBS)

bench: $(BENCH_BINS)

test: tests npm-deps
	@BUILD=$(BUILD) SAN=$(SAN) tests/run.sh

# The fault campaign (tests/faults/campaign.py, docs/operations.md "Fault
# injection"): make faults N=300 SEED=7 [ONLY=save_data,save_latest].
faults: all
	@python3 tests/faults/campaign.py --bin $(BUILD)/bin --trials $(or $(N),20) --seed $(or $(SEED),1) \
	    $(if $(ONLY),--only $(ONLY))

# --- demo ------------------------------------------------------------------
demo: all
	@BUILD=$(BUILD) examples/demo.sh

# The same demo with a Llama of the same size (examples/configs/llama-demo.ini).
demo-llama: all
	@BUILD=$(BUILD) DEMO=llama examples/demo.sh

# --- install ---------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 0644 $(BUILD)/lib/libweft.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(BUILD)/lib/libweft.so $(DESTDIR)$(PREFIX)/lib/libweft.so.$(VERSION)
	ln -sf libweft.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libweft.so.0
	ln -sf libweft.so.0 $(DESTDIR)$(PREFIX)/lib/libweft.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@IBVERBS_LIBS@|$(IBVERBS_LIBS)|' mk/weft.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/weft.pc
	install -m 0755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	for h in $(PUBLIC_HDRS); do \
	    install -d $(DESTDIR)$(PREFIX)/include/weft/$$(dirname $$h) && \
	    install -m 0644 $$h $(DESTDIR)$(PREFIX)/include/weft/$$h || exit 1; done

# The public header list, one a line (for tests/build/test_install.sh).
public-headers:
	@printf '%s\n' $(PUBLIC_HDRS)

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/weft $(DESTDIR)$(PREFIX)/lib/pkgconfig/weft.pc
	rm -f $(DESTDIR)$(PREFIX)/lib/libweft.* $(TOOLS:$(BUILD)/bin/%=$(DESTDIR)$(PREFIX)/bin/%)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
