# Convenience wrapper around CMake. `make run` and `make test` install what is
# missing (Debian packages), configure, build, and run.
BUILD ?= build
SAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
DEPS = cmake gcc pkg-config libopenblas-openmp-dev libjansson-dev libpng-dev libcmocka-dev zlib1g-dev

.PHONY: deps build run test test-asan clean install

deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./scripts/main-job.sh $(BUILD)

test: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DPLSTM_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) test-asan

test-asan: deps
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPLSTM_WERROR=ON \
	  -DPLSTM_SANITIZE=ON -DPLSTM_CUDA=OFF -DPLSTM_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(SAN_BUILD) -j$(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
