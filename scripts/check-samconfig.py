#!/usr/bin/env python3
"""Checks that samconfig.toml keeps dev and prod apart (run by scripts/validate-templates.sh).

- both environments have their own stack name, S3 prefix and `Environment=` override;
- every secret or parameter name they override belongs to their own environment;
- prod confirms its change sets; both lint on validate and build in parallel.
Exits 1 with one line per problem.
"""
import sys
import tomllib

ENVS = ("dev", "prod")


def overrides(section):
    items = section.get("parameter_overrides", [])
    if isinstance(items, str):
        items = items.split()
    return dict(item.split("=", 1) for item in items)


def main(path):
    with open(path, "rb") as f:
        config = tomllib.load(f)
    problems = []
    stacks = {}
    for env in ENVS:
        if env not in config:
            problems.append(f"[{env}] is missing")
            continue
        deploy = config[env].get("deploy", {}).get("parameters", {})
        stack = deploy.get("stack_name", "")
        stacks[env] = stack
        if env not in stack:
            problems.append(f"[{env}.deploy] stack_name {stack!r} does not name the environment")
        if env not in deploy.get("s3_prefix", ""):
            problems.append(f"[{env}.deploy] s3_prefix does not name the environment")
        params = overrides(deploy)
        if params.get("Environment") != env:
            problems.append(f"[{env}.deploy] parameter_overrides must set Environment={env}")
        for name, value in params.items():
            if name.endswith("SecretName") and f"/{env}/" not in f"/{value}":
                problems.append(
                    f"[{env}.deploy] {name}={value} is not under this environment's /{env}/ names"
                )
        if config[env].get("validate", {}).get("parameters", {}).get("lint") is not True:
            problems.append(f"[{env}.validate] lint must be true")
        if config[env].get("build", {}).get("parameters", {}).get("parallel") is not True:
            problems.append(f"[{env}.build] parallel must be true")
    if stacks.get("dev") and stacks.get("dev") == stacks.get("prod"):
        problems.append("dev and prod deploy to the same stack")
    prod_deploy = config.get("prod", {}).get("deploy", {}).get("parameters", {})
    if prod_deploy.get("confirm_changeset") is not True:
        problems.append("[prod.deploy] confirm_changeset must be true")
    for p in problems:
        print(f"samconfig: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"samconfig: {path}: dev and prod are kept apart", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "samconfig.toml"))
