#!/usr/bin/env python3
"""Template parameters for `sam deploy` without losing samconfig.toml's.

`sam deploy --parameter-overrides A=1` does not add A to samconfig.toml's `parameter_overrides`:
it REPLACES the whole list (VPC, subnets, secret names, ...), and the stack is updated with the
template's defaults for everything else. This script gives the merged list instead.

  deploy/sam-overrides.py ENV [KEY=VALUE ...]
      prints samconfig's [ENV.deploy.parameters] parameter_overrides with these set (replaced or
      added), as ONE argument for --parameter-overrides:
        sam deploy --config-env dev --parameter-overrides "$(deploy/sam-overrides.py dev ArtifactKey=...)"
  deploy/sam-overrides.py --write ENV KEY=VALUE ...
      sets them in samconfig.toml itself (edits that section's list in place; commit the change),
      so that a plain `sam deploy --config-env ENV` uses them.

Options: --file PATH (default: samconfig.toml next to this script's folder). Values may not
contain spaces or quotes. Exits 2 on a usage error, 1 when the file or section is wrong.
"""
import pathlib
import re
import sys
import tomllib


def fail(message, code=1):
    print(f"sam-overrides: {message}", file=sys.stderr)
    sys.exit(code)


def parse_pairs(pairs):
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9]+", key):
            fail(f"expected KEY=VALUE with an alphanumeric KEY, got {p!r}", 2)
        if re.search(r"[\s\"']", value):
            fail(f"{key}: values with spaces or quotes are not supported", 2)
        out[key] = value
    return out


def current(config, env):
    section = config.get(env, {}).get("deploy", {}).get("parameters")
    if section is None:
        fail(f"no [{env}.deploy.parameters] section")
    items = section.get("parameter_overrides", [])
    if isinstance(items, str):
        items = items.split()
    merged = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"[{env}.deploy.parameters] parameter_overrides: {item!r} is not KEY=VALUE")
        merged[key] = value
    return merged


def write(path, env, updates):
    lines = path.read_text().splitlines(keepends=True)
    header = f"[{env}.deploy.parameters]"
    start = next((i for i, l in enumerate(lines) if l.strip() == header), None)
    if start is None:
        fail(f"no {header} section in {path}")
    section = re.compile(r"^\[[A-Za-z0-9_.\-]+\]\s*$")
    end = next((i for i in range(start + 1, len(lines)) if section.match(lines[i])), len(lines))
    begin = next((i for i in range(start, end) if lines[i].lstrip().startswith("parameter_overrides")), None)
    if begin is None or not lines[begin].rstrip().endswith("["):
        fail(f"{header}: expected `parameter_overrides = [` followed by one \"KEY=VALUE\", per line")
    close = next((i for i in range(begin + 1, end) if lines[i].strip() == "]"), None)
    if close is None:
        fail(f"{header}: the parameter_overrides list is not closed by a line `]`")
    todo = dict(updates)
    for i in range(begin + 1, close):
        m = re.fullmatch(r'(\s*)"([A-Za-z0-9]+)=([^"]*)",?(\s*)', lines[i].rstrip("\n"))
        if m and m.group(2) in todo:
            lines[i] = f'{m.group(1)}"{m.group(2)}={todo.pop(m.group(2))}",\n'
    indent = "  "
    added = [f'{indent}"{k}={v}",\n' for k, v in todo.items()]
    lines[close:close] = added
    path.write_text("".join(lines))


def main(argv):
    args = list(argv)
    path = pathlib.Path(__file__).resolve().parent.parent / "samconfig.toml"
    do_write = False
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--write":
            do_write = True
        elif opt == "--file" and args:
            path = pathlib.Path(args.pop(0))
        elif opt in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            fail(f"unknown option {opt}", 2)
    if not args:
        fail("usage: deploy/sam-overrides.py [--write] [--file PATH] ENV [KEY=VALUE ...]", 2)
    env, updates = args[0], parse_pairs(args[1:])
    with open(path, "rb") as f:
        config = tomllib.load(f)
    merged = current(config, env)
    if do_write:
        if not updates:
            fail("--write needs at least one KEY=VALUE", 2)
        write(path, env, updates)
        with open(path, "rb") as f:
            check = current(tomllib.load(f), env)
        for k, v in updates.items():
            if check.get(k) != v:
                fail(f"could not set {k} in {path}")
        print(f"sam-overrides: {path} [{env}.deploy.parameters]: "
              + " ".join(f"{k}={v}" for k, v in updates.items()), file=sys.stderr)
        return 0
    merged.update(updates)
    print(" ".join(f"{k}={v}" for k, v in merged.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
