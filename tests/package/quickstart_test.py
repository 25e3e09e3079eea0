"""Builds the README quick start against an installed cppfly and runs it.

Steps: cmake --install the build tree into a scratch prefix; write main.cpp, pyfly.yaml and
CMakeLists.txt from the README's marked code blocks; configure with CMAKE_PREFIX_PATH pointing at
the prefix; build; run the service, wait (bounded) for the order it publishes to itself, send SIGINT
and expect exit code 0 after a clean stop.
"""
import argparse
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time


def blocks(readme: str) -> dict:
    found = {}
    for match in re.finditer(r"<!-- quickstart:(\S+) -->\s*```\w*\n(.*?)```", readme, re.S):
        found[match.group(1)] = match.group(2)
    return found


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=540, **kw)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readme", required=True)
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--work-dir", required=True)
    args = ap.parse_args()

    files = blocks(open(args.readme, encoding="utf-8").read())
    for name in ("main.cpp", "pyfly.yaml", "CMakeLists.txt"):
        if name not in files:
            print(f"README.md has no '<!-- quickstart:{name} -->' code block", file=sys.stderr)
            return 1

    shutil.rmtree(args.work_dir, ignore_errors=True)
    prefix = os.path.join(args.work_dir, "prefix")
    project = os.path.join(args.work_dir, "project")
    os.makedirs(project)
    run(["cmake", "--install", args.build_dir, "--prefix", prefix])
    # Built with the Kafka adapter, the install has the dead-letter tool, and it runs from there.
    cache = open(os.path.join(args.build_dir, "CMakeCache.txt"), encoding="utf-8").read()
    if "CPPFLY_WITH_KAFKA:BOOL=ON" in cache:
        tool = os.path.join(prefix, "bin", "cppfly-dlq")
        help_text = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=60, check=True).stdout
        if "exit codes:" not in help_text:
            print(f"{tool} --help printed no exit codes:\n{help_text}", file=sys.stderr)
            return 1
    for name, text in files.items():
        with open(os.path.join(project, name), "w", encoding="utf-8") as f:
            f.write(text)
    build = os.path.join(project, "build")
    run(["cmake", "-S", project, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror"])
    run(["cmake", "--build", build])

    env = dict(os.environ)
    env.pop("PYFLY_MESSAGING_PROVIDER", None)
    proc = subprocess.Popen([os.path.join(build, "order_service")], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    expected = "received order A-1 x2"
    output = []
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    seen = False
    while not seen and time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break  # the service exited
            output.append(chunk.decode(errors="replace"))
            seen = expected in "".join(output)
    if not seen:
        proc.kill()
        proc.wait(timeout=30)
        print("".join(output), f"\nthe service did not print '{expected}' within 60 s", file=sys.stderr)
        return 1
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        print("the service did not stop within 30 s of SIGINT", file=sys.stderr)
        return 1
    rest = rest.decode(errors="replace")
    output.append(rest)
    print("".join(output))
    if proc.returncode != 0:
        print(f"exit code {proc.returncode} after SIGINT, expected 0", file=sys.stderr)
        return 1
    if "stopped" not in rest:
        print("no clean-stop line after SIGINT", file=sys.stderr)
        return 1
    print("quick start: built with find_package(cppfly), received its order, stopped cleanly on SIGINT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
