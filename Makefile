# The two commands of lucid-vk's README, plus the benchmark:
#   make demo    install what is missing, build, and run the main job
#   make test    install what is missing, build, and run the whole test suite
#   make bench   speed against PyTorch on the same machine (not a test)
# The build itself is CMake; this file only chains the steps.

BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all build demo test bench clean

all: build

build:
	@scripts/bootstrap.sh build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD)

test:
	@scripts/bootstrap.sh test
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	@# The conformance count and the validation-message count come first, so
	@# that ctest's own summary stays the last thing printed.
	@cd $(BUILD) && { ctest --output-on-failure -j $(JOBS) > ctest.out 2>&1; rc=$$?; \
	  grep -h "ONNX conformance:" Testing/Temporary/LastTest.log; \
	  echo "Vulkan validation messages in the test logs: $$(grep -c 'lucidvk: validation' Testing/Temporary/LastTest.log)"; \
	  cat ctest.out; exit $$rc; }

bench: build
	@scripts/bootstrap.sh bench
	bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) out
