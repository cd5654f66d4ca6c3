"""A stage that hunts for secrets: every visible process's environment and command line,
and the files it can read in the places a container's credentials end up. It is given
only sha256 digests of what to look for (so the needles themselves appear nowhere) and
writes what it found, by digest, and how much it searched.

Tokens are the pieces of text between separators (whitespace, = : " ' , ; and NUL), so a
secret is found as a variable's value, in a .env/.ini/JSON/PEM-body file, or on a command
line; a PEM key by its base64 body line.
"""
import hashlib
import json
import os
import re

params = json.load(open(os.environ["TYCHO_PARAMS"]))
needles = set(params["sha256"])
lengths = {int(n) for n in params["lengths"]}
SPLIT = re.compile(rb"[\s=:\"',;\x00]+")
found, scanned = set(), {"processes": 0, "files": 0, "bytes": 0}


def look(data: bytes) -> None:
    scanned["bytes"] += len(data)
    for token in SPLIT.split(data):
        if len(token) in lengths:
            digest = hashlib.sha256(token).hexdigest()
            if digest in needles:
                found.add(digest)


for pid in os.listdir("/proc"):
    if pid.isdigit():
        scanned["processes"] += 1
        for part in ("environ", "cmdline"):
            try:
                look(open(f"/proc/{pid}/{part}", "rb").read())
            except OSError:
                pass

roots = ["/tmp", "/etc", "/run", "/var/run", "/var/tmp", "/stage", os.environ.get("HOME", "/"), os.getcwd(),
         os.path.dirname(os.path.dirname(os.environ["TYCHO_INPUTS"])), params.get("repo", "/")]
SKIP = {"proc", "sys", "dev", ".venv", ".git", "node_modules", "__pycache__", "site-packages", ".mypy_cache"}
seen = set()
for root in roots:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP]
        if folder in seen:
            dirs[:] = []
            continue
        seen.add(folder)
        for name in files:
            path = os.path.join(folder, name)
            try:
                if os.path.islink(path) or os.path.getsize(path) > 1 << 20:
                    continue
                with open(path, "rb") as f:
                    look(f.read())
                scanned["files"] += 1
            except OSError:
                pass

with open(os.path.join(os.environ["TYCHO_OUTPUTS"], "found.json"), "w") as out:
    json.dump({"found": sorted(found), "scanned": scanned}, out, sort_keys=True)
print(f"searched {scanned['processes']} processes and {scanned['files']} files")
