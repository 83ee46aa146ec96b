"""Fails when the SAM template's resources, once SAM has expanded them, depend on each other in a
cycle: CloudFormation refuses such a stack at deploy time, and neither `sam validate --lint` nor
cfn-lint finds one that only SAM's generated resources close (a function given another
function's URL, whose role names the state machine that invokes the first: the alias, version
and role resources SAM adds are the links). Usage: template-cycles.py TEMPLATE (run with the
tools venv's Python, which has samtranslator)."""

import re
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policy by name, so none needs looking up in IAM."""

    def load(self):
        return {}


def referenced(node, found):
    """The logical ids `node` names through Ref, GetAtt and Sub."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value.split(".")[0])
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found.update(name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text))
                if not isinstance(value, str):
                    referenced(value[1], found)
            else:
                referenced(value, found)
    elif isinstance(node, list):
        for item in node:
            referenced(item, found)


def main(path):
    template = yaml_parse(open(path).read())
    # Local code paths are what `sam package` replaces with S3 URIs; the transform wants those.
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = "s3://bucket/code.zip"
    for resource in template["Resources"].values():
        if "DefinitionUri" in resource.get("Properties", {}):
            resource["Properties"]["DefinitionUri"] = "s3://bucket/definition.json"
    resources = transform(template, {}, NoManagedPolicies())["Resources"]
    graph = {}
    for name, resource in resources.items():
        found = set()
        referenced(resource.get("Properties", {}), found)
        depends_on = resource.get("DependsOn", [])
        found.update([depends_on] if isinstance(depends_on, str) else depends_on)
        graph[name] = sorted(found & resources.keys())
    state, path_now = {}, []

    def visit(name):
        state[name] = "visiting"
        path_now.append(name)
        for needed in graph[name]:
            if state.get(needed) == "visiting":
                cycle = path_now[path_now.index(needed):] + [needed]
                sys.exit(f"{path}: resources depend on each other in a cycle: {' -> '.join(cycle)}")
            if needed not in state:
                visit(needed)
        state[name] = "done"
        path_now.pop()

    for name in graph:
        if name not in state:
            visit(name)
    print(f"{path}: no dependency cycle among the {len(graph)} resources SAM makes")


if __name__ == "__main__":
    main(sys.argv[1])
