"""Builds and runs the guide's complete examples against an installed cppfly.

Each example is a set of marked code blocks in docs/guide.md: `<!-- example:NAME/main.cpp -->`
(the program) and `<!-- example:NAME/expected -->` (lines its output must hold, in order). The
test installs the build tree into a scratch prefix once, then for each example writes main.cpp and
a CMakeLists.txt that finds cppfly with find_package, builds it with warnings as errors, runs it
(bounded) and checks its exit code and output.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

CMAKELISTS = """cmake_minimum_required(VERSION 3.25)
project(guide_example CXX)
find_package(cppfly CONFIG REQUIRED)
add_executable(example main.cpp)
target_link_libraries(example PRIVATE cppfly::messaging cppfly::kafka)
"""


def examples(guide: str) -> dict:
    found = {}
    for match in re.finditer(r"<!-- example:([\w-]+)/(\S+) -->\s*```\w*\n(.*?)```", guide, re.S):
        found.setdefault(match.group(1), {})[match.group(2)] = match.group(3)
    return found


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=540, **kw)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--guide", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    args = ap.parse_args()

    found = examples(open(args.guide, encoding="utf-8").read())
    if not found:
        print("docs/guide.md has no '<!-- example:NAME/main.cpp -->' block", file=sys.stderr)
        return 1
    shutil.rmtree(args.work_dir, ignore_errors=True)
    prefix = os.path.join(args.work_dir, "prefix")
    run(["cmake", "--install", args.build_dir, "--prefix", prefix])
    failures = []
    for name, files in sorted(found.items()):
        if "main.cpp" not in files or "expected" not in files:
            failures.append(f"{name}: needs both a main.cpp and an expected block")
            continue
        project = os.path.join(args.work_dir, name)
        os.makedirs(project)
        with open(os.path.join(project, "main.cpp"), "w", encoding="utf-8") as f:
            f.write(files["main.cpp"])
        with open(os.path.join(project, "CMakeLists.txt"), "w", encoding="utf-8") as f:
            f.write(CMAKELISTS)
        build = os.path.join(project, "build")
        run(["cmake", "-S", project, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
             "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror"])
        run(["cmake", "--build", build])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYFLY_")}
        try:
            result = subprocess.run([os.path.join(build, "example")], cwd=project, env=env, timeout=120,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except subprocess.TimeoutExpired:
            failures.append(f"{name}: did not finish within 120 s")
            continue
        print(f"== {name}: exit {result.returncode}\n{result.stdout}", flush=True)
        lines = result.stdout.splitlines()
        position = 0
        for wanted in files["expected"].splitlines():
            while position < len(lines) and lines[position] != wanted:
                position += 1
            if position == len(lines):
                failures.append(f"{name}: output lacks (in order) {wanted!r}")
                break
            position += 1
        if result.returncode != 0:
            failures.append(f"{name}: exit code {result.returncode}\n{result.stderr[-2000:]}")
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    if not failures:
        print(f"guide examples: {', '.join(sorted(found))} built with find_package(cppfly) and ran as documented")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
