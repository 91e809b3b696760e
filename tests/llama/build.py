"""Build llama.cpp's `llama-server` once per machine, from the llama.cpp tree that the PyPI sdist
of llama-cpp-python carries, and print the binary's path.

`python -m tests.llama.build` (the Makefile's `llama-server` target) builds it if the cache lacks
it; the tests call `server_binary()` to find it. The binary lives outside the checkout, keyed by
the sdist's version, so every checkout and CI run on the machine reuses one build (about 7
minutes on 2 cores). Standard library only: it runs before anything else is installed.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# The llama-cpp-python release whose vendored llama.cpp the tests run (docs/providers.md).
VERSION = "0.3.36"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stabilizer" / f"llama-server-{VERSION}"
# Only the server: CPU, static, portable (no -march=native, so a cache copied between machines runs),
# no web UI (LLAMA_USE_PREBUILT_UI would download it), no TLS.
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
)


def server_binary() -> Path:
    """The cached llama-server; `make llama-server` builds it."""
    return CACHE / "llama-server"


def _tool(name: str) -> str:
    """cmake or ninja, as `make llama-server` installs them."""
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} is needed to build llama-server (apt install cmake ninja-build g++)")
    return found


def _source(workdir: Path) -> Path:
    """The sdist's llama.cpp tree, unpacked in workdir."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        + ["--dest", str(workdir), f"llama-cpp-python=={VERSION}"],
        check=True,
    )
    (sdist,) = workdir.glob("llama_cpp_python-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(workdir, filter="data")
    tree = workdir / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    # A .git *file* pointing into the sdist's own git data: CMake's build-info step then depends
    # on paths that never settle, and Ninja loops ("build.ninja still dirty after 100 tries").
    (tree / ".git").unlink(missing_ok=True)
    return tree


def build(jobs: int) -> Path:
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as tmp:
        workdir = Path(tmp)
        tree = _source(workdir)
        out = workdir / "build"
        cmake = _tool("cmake")
        subprocess.run(
            [cmake, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}", "-S", str(tree), "-B", str(out)]
            + list(CMAKE_OPTIONS),
            check=True,
        )
        # Lowest priority: the build shares the machine with whatever else runs.
        subprocess.run(
            ["nice", "-n", "19", cmake, "--build", str(out), "--target", "llama-server", "-j", str(jobs)], check=True
        )
        CACHE.mkdir(parents=True, exist_ok=True)
        # Copied under another name, then renamed: a build cut short never leaves a half binary.
        partial = CACHE / "llama-server.partial"
        shutil.copy2(out / "bin" / "llama-server", partial)
        partial.replace(server_binary())
    return server_binary()


def main() -> None:
    binary = server_binary()
    if not binary.exists():
        print(f"building llama-server from llama-cpp-python {VERSION}'s llama.cpp (minutes, once per machine)")
        build(jobs=int(os.environ.get("LLAMA_BUILD_JOBS", "2")))
    print(binary)


if __name__ == "__main__":
    main()
