#!/usr/bin/env python3
"""The browser tests: www/comet.js, the Laravel Echo connector
www/comet-echo.js (with npm's laravel-echo 1.x and 2.x, and npm's pusher
publishing), the Mercure endpoint and the chat demo in Debian's chromium,
driven by playwright-core under node's test runner, against real lighttpd
and Apache started through tests/harness/ (see the *.test.js files; client
and connector run in node alone).

    python3 tests/browser/run.py [client|connector|chat|restart|keepalive|cors|jsonp|protocol|token|mercure|echo ...]

(modphp.test.js is not among them: tests/integration/test_modphp.py starts
its servers, an Apache with mod_php among them, and runs it with
ensure_modules() and run_file() from here.)

Exits 77 (skipped, for `make check`) when node or chromium is missing.
Installs the node packages of package-lock.json (playwright-core,
laravel-echo 1.x and 2.x, pusher) with `npm ci` when they are not there
yet: into tests/browser/node_modules of the source tree, or of the
build tree when the source tree is read-only. Screenshots go to
test-artifacts/browser/ under the current directory (the build tree).

Environment: CHROMIUM (default /usr/bin/chromium), NODE (default: node on
PATH), COMET_FCGI and the rest as for tests/harness/.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = ["client", "connector", "chat", "restart", "keepalive", "cors", "jsonp", "protocol", "token",
         "mercure", "echo"]
# Whole-file limit: each takes well under a minute on the 2-core test machine.
FILE_TIMEOUT = 150
SKIP = 77


def locked_versions():
    """{directory under node_modules: version} of every dependency that
    package.json names (npm aliases, such as laravel-echo-1, by their
    directory), as package-lock.json pins them."""
    with open(os.path.join(HERE, "package-lock.json")) as f:
        lock = json.load(f)
    pkgs = lock["packages"]
    return {name: pkgs["node_modules/" + name]["version"]
            for name in pkgs[""].get("dependencies", {})}


def installed_version(prefix, name="playwright-core"):
    try:
        with open(os.path.join(prefix, "node_modules", name, "package.json")) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def complete(prefix, want):
    return all(installed_version(prefix, n) == v for n, v in want.items())


def ensure_modules():
    """The directory whose node_modules holds every dependency (playwright-core,
    the laravel-echo versions, pusher) at its locked version, running `npm ci`
    first when needed; None (and a message) when that fails."""
    want = locked_versions()
    build_dir = os.path.join(os.getcwd(), "tests", "browser")
    candidates = [HERE]
    if os.path.realpath(build_dir) != os.path.realpath(HERE):
        candidates.append(build_dir)
    for c in candidates:
        if complete(c, want):
            return c
    target = HERE if os.access(HERE, os.W_OK) else build_dir
    npm = shutil.which("npm")
    if not npm:
        sys.stderr.write("run.py: the tests' node modules are not installed and npm is missing "
                         "(apt-get install npm, then: cd tests/browser && npm ci)\n")
        return None
    if target != HERE:
        os.makedirs(target, exist_ok=True)
        for n in ("package.json", "package-lock.json"):
            shutil.copyfile(os.path.join(HERE, n), os.path.join(target, n))
    sys.stderr.write("run.py: npm ci in %s\n" % target)
    p = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=target)
    if p.returncode != 0 or not complete(target, want):
        sys.stderr.write("run.py: npm ci failed in %s\n" % target)
        return None
    return target


def run_file(node, name, env):
    """node --test <name>.test.js in its own process group (killed whole on
    timeout or when we are terminated). True when it passed."""
    path = os.path.join(HERE, name + ".test.js")
    t0 = time.monotonic()
    proc = subprocess.Popen([node, "--test", path], env=env, start_new_session=True)

    def kill_group(*_):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    old = signal.signal(signal.SIGTERM, lambda *a: (kill_group(), sys.exit(143)))
    try:
        proc.wait(timeout=FILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        sys.stderr.write("run.py: %s took more than %d s; stopping it\n" % (name, FILE_TIMEOUT))
        kill_group()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        # The test file runs in a child of node --test, which may outlive
        # it (playwright's SIGTERM handler closes the browser and does not
        # always exit): whatever is left of the group goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return False
    except BaseException:
        kill_group()
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
    sys.stderr.write("run.py: %s: %s in %.1f s\n" % (
        name, "passed" if proc.returncode == 0 else "FAILED", time.monotonic() - t0))
    return proc.returncode == 0


def main(argv):
    names = argv or TESTS
    unknown = set(names) - set(TESTS)
    if unknown:
        sys.stderr.write("run.py: unknown test(s): %s (have: %s)\n"
                         % (", ".join(sorted(unknown)), ", ".join(TESTS)))
        return 2
    node = os.environ.get("NODE") or shutil.which("node") or shutil.which("nodejs")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not node:
        print("SKIP: node is not installed (apt-get install nodejs npm)")
        return SKIP
    if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
        print("SKIP: %s is not installed (apt-get install chromium)" % chromium)
        return SKIP
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(out.lstrip("v").split(".")[0] or 0) if out else 0
    if major < 18:
        sys.stderr.write("run.py: node %s is too old: playwright-core and node:test "
                         "need 18 or later\n" % out)
        return 1
    modules = ensure_modules()
    if not modules:
        return 1
    env = dict(os.environ)
    env["NODE_PATH"] = os.path.join(modules, "node_modules")
    env["CHROMIUM"] = chromium
    env["PYTHON3"] = sys.executable
    env.setdefault("COMET_ARTIFACTS", os.path.join(os.getcwd(), "test-artifacts", "browser"))
    failed = [n for n in names if not run_file(node, n, env)]
    if failed:
        sys.stderr.write("run.py: FAILED: %s\n" % ", ".join(failed))
        return 1
    print("run.py: all passed (%s); screenshots in %s" % (", ".join(names), env["COMET_ARTIFACTS"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
