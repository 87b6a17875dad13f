"""Build the wheel dataset: every wheel the GPU environment needs, in one folder to upload to Kaggle.

Kaggle runs competition notebooks without internet, so the packages come from a dataset attached to
the notebook and are installed with `pip install --no-index --find-links=<that folder>`. This script
fills the folder on any machine with internet (a Kaggle notebook with internet on included):

    python kaggle_notebooks/build_wheel_dataset.py --out wheels/            # then upload wheels/
    python kaggle_notebooks/build_wheel_dataset.py --help

What goes in:

- the wheels of requirements-gpu.txt (which includes requirements.txt) and all their dependencies,
  for Kaggle's interpreter (CPython 3.11 by default, --python-version) on Linux x86_64 (manylinux
  tags up to glibc 2.35, Ubuntu 22.04's, --glibc): `pip download --only-binary=:all:`, so nothing
  needs building offline. torch==2.13.0 from PyPI is the CUDA build (it pulls the nvidia-* wheels);
  --torch-index https://download.pytorch.org/whl/cuXXX (PyTorch's index of one CUDA version, e.g.
  cu126) takes torch from there instead (pip's --extra-index-url; pip prefers its +cuXXX build to
  PyPI's); --extra-index-url adds any other index;
- the two requirements files, so that the notebook installs exactly these pins;
- the project's own code (training_code/) as a pure-Python wheel, arc_pipeline-<version>-py3-none-any.whl,
  built here with the standard library (zipfile), so no build backend is needed;
- install.sh, which installs all of it from the folder it sits in, offline;
- with --kaggle-id USER/SLUG, dataset-metadata.json for `kaggle datasets create -p <out>`.

The download is several gigabytes (torch, CUDA libraries, unsloth, xformers, triton). --only NAME
(repeatable) downloads just those packages instead of the requirements: for tests and for topping up.

Checks, each an error that stops the build (exit status 1):

- the folder must hold a CUDA build of torch: a missing torch wheel, or a CPU-only one (local version
  +cpu, which a pip configuration's index or find-links can supply), fails; with --torch-index .../cuXXX
  the wheel must be that +cuXXX build;
- an offline dry run, `pip install --dry-run --no-index --find-links=<out> --ignore-installed
  --only-binary=:all: --target <tmp> -r requirements-gpu.txt` for the same Python and platform,
  ignoring the pip configuration, must resolve every requirement from the folder alone (what the
  Kaggle notebook will do); the error names what is missing.

pip evaluates environment markers (`; python_version < "3.12"`, `; sys_platform == "linux"`) against the
interpreter it runs in, not against --python-version and --platform, so the build refuses to run on
anything but Linux x86_64 with the target Python unless --force is given (with --only it only warns).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "training_code"
REQUIREMENTS = ("requirements.txt", "requirements-gpu.txt")  # the second includes the first with -r
KAGGLE_PYTHON = "3.11"  # the Python of Kaggle's notebook image (2024 and 2025)
KAGGLE_GLIBC = "2.35"  # Kaggle's image is Ubuntu 22.04
OLDEST_MANYLINUX = 17  # manylinux_2_17 is manylinux2014, the oldest tag worth offering
DEFAULT_SLUG = "arc-wheels"
WHEEL_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same source gives the same wheel bytes


class WheelDownloadError(RuntimeError):
    """pip could not download a wheel for every requirement on the target platform."""


class DatasetCheckError(WheelDownloadError):
    """The downloaded folder would not install on Kaggle: a wheel missing, or the wrong torch build."""


class HostMismatchError(RuntimeError):
    """This machine is not the target (Linux x86_64 with the target Python): markers would be misjudged."""


# --------------------------------------------------------------------------------------------------
# pip download


def platform_tags(glibc: str = KAGGLE_GLIBC, arch: str = "x86_64") -> list[str]:
    """Every manylinux tag a Linux with this glibc accepts, newest first, and the legacy aliases.

    pip takes --platform tags literally (it does not expand manylinux_2_35 to the older ones that
    the same system also runs), so all of them are listed.
    """
    major, minor = (int(part) for part in glibc.split("."))
    if major != 2 or minor < OLDEST_MANYLINUX:
        raise ValueError(f"glibc {glibc}: expected 2.N with N >= {OLDEST_MANYLINUX}")
    tags = [f"manylinux_2_{n}_{arch}" for n in range(minor, OLDEST_MANYLINUX - 1, -1)]
    return tags + [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def target_options(python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC) -> list[str]:
    """pip's options that pick wheels for CPython ``python_version`` on Linux x86_64 with ``glibc``."""
    abi = "cp" + python_version.replace(".", "")
    cmd = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", "--abi", abi]
    for tag in platform_tags(glibc):
        cmd += ["--platform", tag]
    return cmd


def pip_download_command(dest: Path, *, requirements: Sequence[Path] = (), packages: Sequence[str] = (),
                         python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC, no_deps: bool = False,
                         extra_index_urls: Sequence[str] = (), python: str = sys.executable) -> list[str]:
    """The `pip download` argument list: binary wheels only, for CPython ``python_version`` on Linux."""
    if not requirements and not packages:
        raise ValueError("nothing to download: give requirements files or packages")
    cmd = [python, "-m", "pip", "download", "--disable-pip-version-check", *target_options(python_version, glibc),
           "--dest", str(dest)]
    for url in extra_index_urls:
        cmd += ["--extra-index-url", url]
    if no_deps:
        cmd.append("--no-deps")
    for requirement in requirements:
        cmd += ["-r", str(requirement)]
    return cmd + list(packages)


def download_wheels(cmd: Sequence[str]) -> None:
    """Run `pip download`; a failure raises WheelDownloadError saying what to look at."""
    print("$ " + " ".join(cmd), flush=True)
    try:
        subprocess.run(list(cmd), check=True)
    except subprocess.CalledProcessError as e:
        raise WheelDownloadError(
            f"pip download failed (exit status {e.returncode}); its output above names the requirement. "
            "Usual causes: a package with no wheel for this Python and platform (only an sdist), "
            "a pin the index does not carry, or no network.") from e


def cuda_tag(torch_index: str) -> str:
    """The CUDA build an index of PyTorch's form serves (``.../whl/cu126`` -> ``cu126``), else ''."""
    last = torch_index.rstrip("/").rsplit("/", 1)[-1]
    return last if re.fullmatch(r"cu\d+", last) else ""


def check_torch_wheel(dest: Path, torch_index: str = "") -> Path:
    """The torch wheel of ``dest``; DatasetCheckError when there is none, when one is a CPU-only build
    (+cpu: it would install, and the notebook would run on the CPU), or when ``torch_index`` names a
    CUDA build (``.../cuXXX``) and the wheel is not that build."""
    wheels = sorted(dest.glob("torch-*.whl"))
    if not wheels:
        raise DatasetCheckError(
            f"no torch wheel in {dest}: the GPU set needs one (is torch still pinned in requirements.txt?)")
    cpu = [p.name for p in wheels if "+cpu" in p.name]
    if cpu:
        raise DatasetCheckError(
            f"{', '.join(cpu)} in {dest} is a CPU-only build of torch: delete it and build again with "
            "--torch-index https://download.pytorch.org/whl/cuXXX (the CUDA version of the GPU), and check "
            "that no pip configuration (PIP_FIND_LINKS, PIP_EXTRA_INDEX_URL, pip.conf) supplies a +cpu torch")
    tag = cuda_tag(torch_index)
    if tag and not any(f"+{tag}-" in p.name for p in wheels):
        raise DatasetCheckError(f"--torch-index {torch_index}: the torch wheel in {dest} "
                                f"({', '.join(p.name for p in wheels)}) is not its +{tag} build")
    return wheels[-1]


def pip_verify_command(dest: Path, target: Path, *, requirements: Sequence[Path] = (), packages: Sequence[str] = (),
                       python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC, no_deps: bool = False,
                       python: str = sys.executable) -> list[str]:
    """`pip install --dry-run` from ``dest`` alone (no index, no pip configuration: ``--isolated``, and
    run it with ``isolated_environment()``) for the target Python and platform; ``--target`` lets pip
    accept the foreign platform, ``--ignore-installed`` ignores this environment's packages."""
    if not requirements and not packages:
        raise ValueError("nothing to verify: give requirements files or packages")
    cmd = [python, "-m", "pip", "--isolated", "install", "--disable-pip-version-check", "--dry-run", "--no-index",
           f"--find-links={dest}", "--ignore-installed", *target_options(python_version, glibc),
           "--target", str(target)]
    if no_deps:
        cmd.append("--no-deps")
    for requirement in requirements:
        cmd += ["-r", str(requirement)]
    return cmd + list(packages)


def isolated_environment() -> dict[str, str]:
    """This environment without pip's settings (PIP_*) and with no pip configuration file at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


MISSING = re.compile(r"(?:No matching distribution found for|satisfies the requirement) ([^\s(]+)")


def verify_wheels(cmd: Sequence[str]) -> None:
    """Run the offline dry run; DatasetCheckError naming the requirements the folder cannot satisfy."""
    print("$ " + " ".join(cmd), flush=True)
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=isolated_environment())
    if done.returncode == 0:
        return
    output = done.stdout + done.stderr
    print(output, file=sys.stderr)
    missing = sorted(set(MISSING.findall(output)))
    what = (f"no wheel for {', '.join(missing)}" if missing
            else f"pip's output above says why (exit status {done.returncode})")
    raise DatasetCheckError(f"the folder would not install offline: {what}. Build again (a failed or "
                            "interrupted download, a requirement added since) or add it with --only NAME.")


def host_mismatch(python_version: str = KAGGLE_PYTHON, system: str = "", machine: str = "",
                  host_python: str = "") -> str:
    """Why this machine (or the one given) is not the target, or '': pip evaluates environment markers
    against the interpreter it runs in, so elsewhere it may pick the wrong dependencies."""
    system = system or platform.system()
    machine = machine or platform.machine()
    host_python = host_python or f"{sys.version_info.major}.{sys.version_info.minor}"
    found = []
    if system != "Linux" or machine.lower() not in ("x86_64", "amd64"):
        found.append(f"this is {system} on {machine}, not Linux x86_64")
    if host_python != python_version:
        found.append(f"this Python is {host_python}, not {python_version}")
    if not found:
        return ""
    return ("; ".join(found) + ": pip judges the requirements' environment markers by this machine, so the "
            f"folder may miss or mismatch dependencies. Build on Linux x86_64 with Python {python_version} "
            "(a Kaggle notebook with internet on: build-wheel-dataset.ipynb)")


# --------------------------------------------------------------------------------------------------
# The project's own wheel


def project_metadata(root: Path = ROOT) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_project_wheel(dest: Path, root: Path = ROOT) -> Path:
    """training_code/ as a pure-Python wheel (PEP 427) in ``dest``; returns its path.

    No dependencies are declared: the requirements files pin them, and the notebook installs both.
    """
    project = project_metadata(root)
    name, version = project["name"], project["version"]
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted((root / PACKAGE).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
                f"Summary: {project.get('description', '')}",
                f"Requires-Python: {project.get('requires-python', '>=3.11')}"]
    license_text = project.get("license", {}).get("text")
    if license_text:
        metadata.append(f"License: {license_text}")
    files[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    files[f"{info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: {Path(__file__).name}\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n").encode()
    files[f"{info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    record = [f"{p},{_record_hash(data)},{len(data)}" for p, data in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()

    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=WHEEL_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    wheel.write_bytes(buffer.getvalue())
    return wheel


# --------------------------------------------------------------------------------------------------
# Installing offline


def install_commands(wheels_dir: str, project_wheel: str) -> list[str]:
    """The offline install: the pinned requirements, then the project (no dependencies of its own)."""
    return [f"pip install --no-index --find-links={wheels_dir} -r {wheels_dir}/requirements-gpu.txt",
            f"pip install --no-index --no-deps {wheels_dir}/{project_wheel}"]


def write_install_script(dest: Path, project_wheel: str) -> Path:
    """install.sh: installs everything from the folder it sits in, with no network."""
    lines = ["#!/bin/sh", "# Offline install of the ARC pipeline from the folder this script is in (a Kaggle dataset).",
             "set -e", 'HERE="$(cd "$(dirname "$0")" && pwd)"', *install_commands('"$HERE"', project_wheel)]
    script = dest / "install.sh"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def write_dataset_metadata(dest: Path, kaggle_id: str) -> Path:
    """dataset-metadata.json for `kaggle datasets create -p DEST` (``kaggle_id``: user/slug)."""
    if kaggle_id.count("/") != 1:
        raise ValueError(f"--kaggle-id {kaggle_id!r}: expected USER/SLUG")
    meta = {"title": f"ARC pipeline wheels ({kaggle_id.split('/')[1]})", "id": kaggle_id,
            "licenses": [{"name": "other"}]}
    path = dest / "dataset-metadata.json"
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# The whole folder


def build_dataset(dest: Path, *, python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC,
                  only: Sequence[str] = (), no_deps: bool = False, extra_index_urls: Sequence[str] = (),
                  torch_index: str = "", slug: str = DEFAULT_SLUG, kaggle_id: str = "", force: bool = False,
                  root: Path = ROOT) -> list[str]:
    """Fill ``dest`` (requirements, project wheel, install.sh, downloaded wheels) and check it; returns the
    install lines as the notebook on Kaggle runs them (the dataset mounted at /kaggle/input/<slug>).

    ``torch_index``: PyTorch's index of one CUDA build (https://download.pytorch.org/whl/cuXXX), added
    to the indexes. The GPU set (no ``only``) must then hold a CUDA torch, and the offline dry run must
    resolve (DatasetCheckError otherwise). On a machine other than the target HostMismatchError, unless
    ``force`` (with ``only`` a warning).
    """
    mismatch = host_mismatch(python_version)
    if mismatch and not (force or only):
        raise HostMismatchError(mismatch + "; --force builds anyway")
    if mismatch:
        print(f"warning: {mismatch}", file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    for name in REQUIREMENTS:
        shutil.copyfile(root / name, dest / name)
    project_wheel = build_project_wheel(dest, root).name
    write_install_script(dest, project_wheel)
    if kaggle_id:
        write_dataset_metadata(dest, kaggle_id)
    requirements = [] if only else [dest / "requirements-gpu.txt"]
    indexes = [*extra_index_urls, torch_index] if torch_index else list(extra_index_urls)
    download_wheels(pip_download_command(dest, requirements=requirements, packages=only, python_version=python_version,
                                         glibc=glibc, no_deps=no_deps, extra_index_urls=indexes))
    if not only:
        check_torch_wheel(dest, torch_index)
    with tempfile.TemporaryDirectory() as target:
        verify_wheels(pip_verify_command(dest, Path(target), requirements=requirements, packages=only,
                                         python_version=python_version, glibc=glibc, no_deps=no_deps))
    return install_commands(f"/kaggle/input/{slug}", project_wheel)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "output" / DEFAULT_SLUG,
                        help="folder to fill (default: output/arc-wheels)")
    parser.add_argument("--python-version", default=KAGGLE_PYTHON, help=f"target Python (default: {KAGGLE_PYTHON})")
    parser.add_argument("--glibc", default=KAGGLE_GLIBC, help=f"target glibc (default: {KAGGLE_GLIBC})")
    parser.add_argument("--torch-index", default="", metavar="URL",
                        help="PyTorch's index of the CUDA build to take torch from, "
                             "https://download.pytorch.org/whl/cuXXX (e.g. cu126; default: PyPI's torch)")
    parser.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                        help="another package index for pip (repeatable)")
    parser.add_argument("--slug", default=DEFAULT_SLUG,
                        help=f"the dataset's name on Kaggle, for the printed install line (default: {DEFAULT_SLUG})")
    parser.add_argument("--kaggle-id", default="", metavar="USER/SLUG",
                        help="also write dataset-metadata.json for `kaggle datasets create`")
    parser.add_argument("--only", action="append", default=[], metavar="PACKAGE",
                        help="download just this package instead of the requirements (repeatable; tests, top-ups)")
    parser.add_argument("--no-deps", action="store_true", help="do not download dependencies (with --only)")
    parser.add_argument("--force", action="store_true",
                        help="build on a machine that is not Linux x86_64 with the target Python")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        lines = build_dataset(args.out, python_version=args.python_version, glibc=args.glibc, only=args.only,
                              no_deps=args.no_deps, extra_index_urls=args.extra_index_url,
                              torch_index=args.torch_index, slug=args.slug, kaggle_id=args.kaggle_id,
                              force=args.force)
    except HostMismatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WheelDownloadError as e:  # DatasetCheckError included
        print(f"error: {e}", file=sys.stderr)
        return 1
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels) / 2**20
    print(f"\n{len(wheels)} wheels, {size:,.0f} MiB in {args.out}. Upload the folder as the Kaggle dataset "
          f"{args.slug!r}; the notebook installs it offline with:")
    for line in lines:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
