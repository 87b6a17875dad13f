"""Build the wheel dataset: the project's wheel and every wheel the Kaggle image lacks, in one folder to upload.

Kaggle runs competition notebooks without internet, so the packages come from a dataset attached to
the notebook and are installed with `pip install --no-index --find-links=<that folder>`. This script
fills the folder on any machine with internet (a Kaggle notebook with internet on included):

    python kaggle_notebooks/build_wheel_dataset.py --image current --out wheels/   # on the image itself
    python kaggle_notebooks/build_wheel_dataset.py --image image.txt --out wheels/ # elsewhere
    python kaggle_notebooks/build_wheel_dataset.py --help

What goes in:

- the project's wheel, arc_pipeline-<version>-py3-none-any.whl, built by `pip wheel` from pyproject.toml
  (setuptools; its metadata carries the project's version ranges and the `gpu` extra);
- the wheels of the packages that `pip install arc_pipeline[gpu]` would install on the image, and no
  others: pip keeps what the image has in the project's ranges (its torch, CUDA libraries and Jupyter
  included), so only what is missing, or installed at a version outside the ranges, is downloaded.
  The image is `--image current` (the environment running this script: the build notebook on Kaggle),
  `--image FILE` (the image's `pip list --format=freeze`, stood in for by an environment of empty
  package records) or, without --image, an empty image (everything, torch and its CUDA wheels too:
  several gigabytes). What is installed comes at the tested pins of requirements-gpu.txt;
- install.sh, which installs the project from the folder it sits in, offline; installs.txt, the list of
  wheels and the image they were chosen for;
- with --kaggle-id USER/SLUG, dataset-metadata.json for `kaggle datasets create -p <out>`.

The wheels are for Kaggle's interpreter (CPython 3.11 by default, --python-version) on Linux x86_64
(manylinux tags up to glibc 2.35, Ubuntu 22.04's, --glibc): `pip download --only-binary=:all:`, so
nothing needs building offline. torch==2.13.0 from PyPI is the CUDA build (it pulls the nvidia-* wheels);
--torch-index https://download.pytorch.org/whl/cuXXX (PyTorch's index of one CUDA version, e.g. cu126)
takes torch from there instead (pip's --extra-index-url; pip prefers its +cuXXX build to PyPI's);
--extra-index-url adds any other index. --only NAME (repeatable) downloads just those packages instead:
for tests and for topping up.

Checks, each an error that stops the build (exit status 1):

- a torch wheel in the folder must be a CUDA build: a CPU-only one (local version +cpu, which a pip
  configuration's index or find-links can supply) fails; with --torch-index .../cuXXX it must be that
  +cuXXX build; without --image the folder must hold one;
- an offline dry run of `pip install --no-index --find-links=<out> arc_pipeline[gpu]` against the image
  (without --image: `--ignore-installed --target <tmp>` for the target Python and platform), ignoring
  the pip configuration, must resolve from the folder alone (what the Kaggle notebook will do); the
  error names what is missing.

pip evaluates environment markers (`; python_version < "3.12"`, `; sys_platform == "linux"`) against the
interpreter it runs in, not against --python-version and --platform, so the build refuses to run on
anything but Linux x86_64 with the target Python unless --force is given (with --only it only warns).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "training_code"
PROJECT = "arc-pipeline"  # pyproject.toml's name
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE.txt")  # what `pip wheel` needs beside the package
EXTRA = "gpu"  # the extra the Kaggle notebook installs (unsloth, bitsandbytes)
PINS = "requirements-gpu.txt"  # the tested versions (it includes requirements.txt with -r)
KAGGLE_PYTHON = "3.11"  # the Python of Kaggle's notebook image (2024 and 2025)
KAGGLE_GLIBC = "2.35"  # Kaggle's image is Ubuntu 22.04
OLDEST_MANYLINUX = 17  # manylinux_2_17 is manylinux2014, the oldest tag worth offering
DEFAULT_SLUG = "arc-wheels"
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the wheel's timestamps: the same source gives the same bytes


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


def index_options(extra_index_urls: Sequence[str] = (), find_links: Sequence[str | Path] = (),
                  no_index: bool = False) -> list[str]:
    """pip's options for where packages come from besides its configured index."""
    cmd = ["--no-index"] if no_index else []
    for url in extra_index_urls:
        cmd += ["--extra-index-url", url]
    return cmd + [f"--find-links={link}" for link in find_links]


def pip_download_command(dest: Path, *, packages: Sequence[str] = (), python_version: str = KAGGLE_PYTHON,
                         glibc: str = KAGGLE_GLIBC, no_deps: bool = False, extra_index_urls: Sequence[str] = (),
                         find_links: Sequence[str | Path] = (), no_index: bool = False,
                         python: str = sys.executable) -> list[str]:
    """The `pip download` argument list: binary wheels only, for CPython ``python_version`` on Linux."""
    if not packages:
        raise ValueError("nothing to download: give packages")
    cmd = [python, "-m", "pip", "download", "--disable-pip-version-check", *target_options(python_version, glibc),
           "--dest", str(dest), *index_options(extra_index_urls, find_links, no_index)]
    if no_deps:
        cmd.append("--no-deps")
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


def check_torch_wheel(dest: Path, torch_index: str = "", required: bool = True) -> Path | None:
    """The torch wheel of ``dest`` (None when there is none and none is ``required``: the image has a torch
    in range); DatasetCheckError when one is missing but required, when one is a CPU-only build (+cpu:
    it would install, and the notebook would run on the CPU), or when ``torch_index`` names a CUDA build
    (``.../cuXXX``) and the wheel is not that build."""
    wheels = sorted(dest.glob("torch-*.whl"))
    if not wheels:
        if not required:
            return None
        raise DatasetCheckError(
            f"no torch wheel in {dest}: the GPU set needs one (is torch still a dependency in pyproject.toml?)")
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


def build_project_wheel(dest: Path, root: Path = ROOT) -> Path:
    """The project's wheel in ``dest``, built by `pip wheel` (setuptools, as pyproject.toml says) from a
    copy of its sources, so that the checkout gets no build/ folder; returns its path.

    Without build isolation (nothing downloaded) when this Python has a setuptools that can build it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arc-wheel-") as scratch:
        source = Path(scratch) / "source"
        shutil.copytree(root / PACKAGE, source / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
        for name in PROJECT_FILES:
            shutil.copyfile(root / name, source / name)
        built = Path(scratch) / "wheel"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "--quiet",
               "--wheel-dir", str(built), str(source)]
        if setuptools_builds_here():
            cmd[4:4] = ["--no-build-isolation", "--no-index"]
        env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
        subprocess.run(cmd, check=True, env=env)
        (wheel,) = built.glob("*.whl")
        return Path(shutil.copy2(wheel, dest / wheel.name))


def setuptools_builds_here(python: str = sys.executable) -> bool:
    """Whether ``python`` has a setuptools recent enough for pyproject.toml (77: license expressions)."""
    probe = ("import setuptools, sys; sys.exit(0 if int(setuptools.__version__.split('.')[0]) >= 77 else 1)")
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


# --------------------------------------------------------------------------------------------------
# The image: what is installed already


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file and of those it includes with ``-r``."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(read_pins(path.parent / line[3:].strip()))
        elif "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def read_image(path: Path) -> dict[str, str]:
    """The packages of an image from its `pip list --format=freeze` (or `pip freeze`): name -> version.
    Lines without a version (``name @ URL``, editable installs) are left out with a warning."""
    packages = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" not in line:
            print(f"warning: {path}: no version in {line!r}: taken as not installed", file=sys.stderr)
            continue
        name, version = line.split("==", 1)
        packages[canonical(name)] = version.strip()
    return packages


def site_packages(python: str | Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def write_package_record(site: Path, name: str, version: str) -> Path:
    """An installed package's record (a .dist-info folder) with no files: pip sees it at that version,
    and can uninstall it."""
    info = site / f"{canonical(name).replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    files = ("METADATA", "INSTALLER", "RECORD")
    (info / "RECORD").write_text("".join(f"{info.name}/{f},,\n" for f in files), encoding="utf-8")
    return info


def stand_in_image(packages: Mapping[str, str], folder: Path) -> Path:
    """A virtual environment (this Python, no pip) holding a record of each package at its version and
    nothing else: pip resolves against it as against the image. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = site_packages(python)
    for name, version in packages.items():
        write_package_record(site, name, version)
    return python


def installed_packages(python: str | Path) -> dict[str, str]:
    """name -> version of every package the environment of ``python`` has."""
    probe = ("import importlib.metadata as m, json; "
             "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    return {canonical(name): version for name, version in json.loads(done.stdout).items() if name}


# --------------------------------------------------------------------------------------------------
# What to download: pip's own plan for the image


def project_requirement(project_wheel: Path) -> str:
    """The project with its GPU extra, as pip takes it from a wheel file."""
    return f"{project_wheel}[{EXTRA}]"


def pip_plan_command(project_wheel: Path, report: Path, constraints: Path, image_python: str | Path | None, *,
                     python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC, scratch: Path | None = None,
                     sources: Sequence[str] = (), offline: bool = False, python: str = sys.executable) -> list[str]:
    """`pip install --dry-run --report` of the project with its extra: against the image's environment
    (``image_python``), or, with none, from nothing (``--ignore-installed --target`` for the target
    Python and platform). ``sources``: pip's index options; ``offline``: no pip configuration either."""
    cmd = [python, "-m", "pip"] + (["--isolated"] if offline else [])
    if image_python is not None and str(image_python) != sys.executable:
        cmd += ["--python", str(image_python)]
    cmd += ["install", "--disable-pip-version-check", "--dry-run", "--quiet", "--report", str(report),
            "--only-binary=:all:", *sources]
    if image_python is None:
        cmd += ["--ignore-installed", *target_options(python_version, glibc)[1:], "--target", str(scratch)]
    cmd += ["-c", str(constraints)] if constraints else []
    return cmd + [project_requirement(project_wheel)]


def planned_installs(report: Path) -> dict[str, str]:
    """name -> version of what pip's --report says it would install, the project left out."""
    items = json.loads(report.read_text(encoding="utf-8"))["install"]
    planned = {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    planned.pop(PROJECT, None)
    return planned


def plan_installs(project_wheel: Path, pins: Mapping[str, str], image: Mapping[str, str] | None,
                  image_python: str | Path | None, scratch: Path, *, sources: Sequence[str] = (),
                  python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC) -> dict[str, str]:
    """What installing the project with its extra adds to the image: name -> version.

    A package the image has is left to pip (it keeps the installed version when that is in every
    range); one it lacks, or one pip would replace, is held to its tested pin. pip's resolver decides,
    so the ranges of the project and of its dependencies are all taken into account.
    """
    image = image or {}
    held = {name: version for name, version in pins.items() if name not in image}
    for _ in range(len(pins) + 1):
        constraints = scratch / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(held.items())),
                               encoding="utf-8")
        report = scratch / "plan.json"
        cmd = pip_plan_command(project_wheel, report, constraints, image_python, python_version=python_version,
                               glibc=glibc, scratch=scratch / "target", sources=sources)
        print("$ " + " ".join(cmd), flush=True)
        try:
            subprocess.run(cmd, check=True)
        except subprocess.CalledProcessError as e:
            raise WheelDownloadError(f"pip could not resolve the project for the image (exit status "
                                     f"{e.returncode}); its output above names the requirement") from e
        planned = planned_installs(report)
        replaced = {name for name in planned if name in image and name in pins and name not in held}
        if not replaced:
            return planned
        held.update({name: pins[name] for name in replaced})  # replaced anyway: by the tested version
    raise WheelDownloadError("pip's plan did not settle")  # each round holds one more pin: cannot happen


# --------------------------------------------------------------------------------------------------
# Installing offline


def install_commands(wheels_dir: str, project_wheel: str) -> list[str]:
    """The offline install: the project with its GPU extra; pip adds what the image lacks from the folder."""
    return [f'pip install --no-index --find-links={wheels_dir} {wheels_dir}/{project_wheel}"[{EXTRA}]"']


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


def write_contents(dest: Path, planned: Mapping[str, str], image: str) -> Path:
    """installs.txt: what the folder holds for which image, and its size."""
    wheels = sorted(dest.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels)
    lines = [f"# planned for the image: {image or 'none (everything)'}",
             f"# {len(wheels)} wheels, {size / 2**20:,.1f} MiB",
             *(f"{name}=={version}" for name, version in sorted(planned.items())),
             *(f"# {p.name} {p.stat().st_size}" for p in wheels)]
    path = dest / "installs.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# The whole folder


def build_dataset(dest: Path, *, image: str = "", python_version: str = KAGGLE_PYTHON, glibc: str = KAGGLE_GLIBC,
                  only: Sequence[str] = (), no_deps: bool = False, extra_index_urls: Sequence[str] = (),
                  find_links: Sequence[str] = (), no_index: bool = False, torch_index: str = "",
                  slug: str = DEFAULT_SLUG, kaggle_id: str = "", force: bool = False,
                  root: Path = ROOT) -> list[str]:
    """Fill ``dest`` (project wheel, the wheels the image lacks, install.sh, installs.txt) and check it;
    returns the install lines as the notebook on Kaggle runs them (the dataset at /kaggle/input/<slug>).

    ``image``: "current" (this environment), a `pip list --format=freeze` file, or "" (an empty image).
    ``torch_index``: PyTorch's index of one CUDA build (https://download.pytorch.org/whl/cuXXX), added
    to the indexes. A torch wheel in the folder must then be that build, and without an image there must
    be one; the offline dry run must resolve (DatasetCheckError otherwise). On a machine other than the
    target HostMismatchError, unless ``force`` (with ``only`` a warning).
    """
    mismatch = host_mismatch(python_version)
    if mismatch and not (force or only):
        raise HostMismatchError(mismatch + "; --force builds anyway")
    if mismatch:
        print(f"warning: {mismatch}", file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    project_wheel = build_project_wheel(dest, root)
    write_install_script(dest, project_wheel.name)
    if kaggle_id:
        write_dataset_metadata(dest, kaggle_id)
    indexes = [*extra_index_urls, torch_index] if torch_index else list(extra_index_urls)
    sources = index_options(indexes, find_links, no_index)
    download = dict(python_version=python_version, glibc=glibc, extra_index_urls=indexes, find_links=find_links,
                    no_index=no_index)
    if only:
        download_wheels(pip_download_command(dest, packages=only, no_deps=no_deps, **download))
        write_contents(dest, {}, f"--only {' '.join(only)}")
        return install_commands(f"/kaggle/input/{slug}", project_wheel.name)
    with tempfile.TemporaryDirectory(prefix="arc-image-") as scratch:
        scratch = Path(scratch)
        packages, image_python = None, None
        if image == "current":
            image_python = sys.executable
            packages = installed_packages(image_python)
        elif image:
            packages = read_image(Path(image))
            image_python = stand_in_image(packages, scratch / "image")
        planned = plan_installs(project_wheel, read_pins(root / PINS), packages, image_python, scratch,
                                sources=sources, python_version=python_version, glibc=glibc)
        if planned:
            download_wheels(pip_download_command(
                dest, packages=[f"{name}=={version}" for name, version in sorted(planned.items())], no_deps=True,
                **download))
        check_torch_wheel(dest, torch_index, required=not image)
        # the notebook's install, offline, from the folder alone, against the same image
        verify_wheels(pip_plan_command(project_wheel, scratch / "verify.json", None, image_python,
                                       python_version=python_version, glibc=glibc, scratch=scratch / "verify",
                                       sources=index_options(find_links=[dest], no_index=True), offline=True))
    write_contents(dest, planned, image)
    return install_commands(f"/kaggle/input/{slug}", project_wheel.name)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "output" / DEFAULT_SLUG,
                        help="folder to fill (default: output/arc-wheels)")
    parser.add_argument("--image", default="", metavar="current|FILE",
                        help="what the target has installed: 'current' (this environment: run on the image), "
                             "or its `pip list --format=freeze`; default: nothing (every wheel, gigabytes)")
    parser.add_argument("--python-version", default=KAGGLE_PYTHON, help=f"target Python (default: {KAGGLE_PYTHON})")
    parser.add_argument("--glibc", default=KAGGLE_GLIBC, help=f"target glibc (default: {KAGGLE_GLIBC})")
    parser.add_argument("--torch-index", default="", metavar="URL",
                        help="PyTorch's index of the CUDA build to take torch from, "
                             "https://download.pytorch.org/whl/cuXXX (e.g. cu126; default: PyPI's torch)")
    parser.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                        help="another package index for pip (repeatable)")
    parser.add_argument("--find-links", action="append", default=[], metavar="DIR",
                        help="a folder of wheels for pip to take packages from (repeatable)")
    parser.add_argument("--no-index", action="store_true", help="no package index: --find-links only")
    parser.add_argument("--slug", default=DEFAULT_SLUG,
                        help=f"the dataset's name on Kaggle, for the printed install line (default: {DEFAULT_SLUG})")
    parser.add_argument("--kaggle-id", default="", metavar="USER/SLUG",
                        help="also write dataset-metadata.json for `kaggle datasets create`")
    parser.add_argument("--only", action="append", default=[], metavar="PACKAGE",
                        help="download just this package instead of the plan (repeatable; tests, top-ups)")
    parser.add_argument("--no-deps", action="store_true", help="do not download dependencies (with --only)")
    parser.add_argument("--force", action="store_true",
                        help="build on a machine that is not Linux x86_64 with the target Python")
    args = parser.parse_args(argv)
    if args.image and args.image != "current" and not Path(args.image).is_file():
        parser.error(f"argument --image: {args.image!r} is neither 'current' nor a file (the image's "
                     "`pip list --format=freeze`)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        lines = build_dataset(args.out, image=args.image, python_version=args.python_version, glibc=args.glibc,
                              only=args.only, no_deps=args.no_deps, extra_index_urls=args.extra_index_url,
                              find_links=args.find_links, no_index=args.no_index, torch_index=args.torch_index,
                              slug=args.slug, kaggle_id=args.kaggle_id, force=args.force)
    except HostMismatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except WheelDownloadError as e:  # DatasetCheckError included
        print(f"error: {e}", file=sys.stderr)
        return 1
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(p.stat().st_size for p in wheels) / 2**20
    print(f"\n{len(wheels)} wheels, {size:,.1f} MiB in {args.out} (listed in installs.txt). Upload the folder as "
          f"the Kaggle dataset {args.slug!r}; the notebook installs it offline with:")
    for line in lines:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
