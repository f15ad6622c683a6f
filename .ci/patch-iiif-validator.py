"""Make iiif-validator 1.0.5's format tests run on Python 3, and give the server time to
answer (used by .ci/run).

Three of its level-3 tests were never ported from Python 2 and fail on Python 3 whatever the
server answers:

- format_webp, format_jp2 and format_pdf call `urllib.urlopen` (Python 2; Python 3 has
  `urllib.request.urlopen`);
- format_webp compares the bytes it read with the text "WEBP" (always unequal on Python 3);
- format_jp2 and format_pdf use the `filemagic` API (`with magic.Magic() as m`,
  `m.id_buffer`), but the package depends on `python-magic`, whose `Magic` has
  `from_buffer` and is no context manager.

Each replacement below is the Python 3 spelling of the same check: the same URL, the same
bytes compared, the same libmagic description tested.

Its other requests give up after 5 seconds (`urlopen(req, timeout=5)`): a timed assertion,
which this project's tests never make (performance is measured in benchmarks). A debug build
on a loaded machine takes longer than that for `size_up`'s 2000×2000 upscales, so the limit
is raised to 300 seconds; what the validator checks in each answer is unchanged. Applied once (a patched file is left
alone); a file that matches neither form stops the script, so a different validator version
is noticed.

Usage: python .ci/patch-iiif-validator.py   (with the virtualenv's Python)
"""

import pathlib
import sys

import iiif_validator

TESTS = pathlib.Path(iiif_validator.__file__).parent / "tests"

# (file, [(Python 2 text, Python 3 text)]).
PATCHES = [
    (
        "../validator.py",
        [("urlopen(req, timeout=5)", "urlopen(req, timeout=300)")],
    ),
    (
        "format_webp.py",
        [
            ("import urllib\n", "import urllib.request\n"),
            ("urllib.urlopen(url)", "urllib.request.urlopen(url)"),
            ('img[8:12] != "WEBP"', 'img[8:12] != b"WEBP"'),
        ],
    ),
    (
        "format_jp2.py",
        [
            ("import magic, urllib\n", "import contextlib, magic, urllib.request\n"),
            ("urllib.urlopen(url)", "urllib.request.urlopen(url)"),
            ("with magic.Magic() as m:", "with contextlib.nullcontext(magic.Magic()) as m:"),
            ("m.id_buffer(img)", "m.from_buffer(img)"),
        ],
    ),
    (
        "format_pdf.py",
        [
            ("import magic, urllib\n", "import contextlib, magic, urllib.request\n"),
            ("urllib.urlopen(url)", "urllib.request.urlopen(url)"),
            ("with magic.Magic() as m:", "with contextlib.nullcontext(magic.Magic()) as m:"),
            ("m.id_buffer(img)", "m.from_buffer(img)"),
        ],
    ),
]


def main():
    for name, replacements in PATCHES:
        path = (TESTS / name).resolve()
        text = path.read_text()
        if all(new in text for _, new in replacements):
            continue
        for old, new in replacements:
            if text.count(old) != 1:
                sys.exit(f"{path}: expected exactly one {old!r}; not iiif-validator 1.0.5?")
            text = text.replace(old, new)
        path.write_text(text)
        print(f"patched {path}")


if __name__ == "__main__":
    main()
