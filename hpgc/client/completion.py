"""Shell completion scripts for `hpgc`, written from its argparse parser: subcommands and their options."""

from __future__ import annotations

import argparse

CHOICES_OF = {"completion": ["bash", "zsh", "fish"]}


def _tree(root: argparse.ArgumentParser) -> dict[str, tuple[str, list[str]]]:
    """{subcommand: (help, [--options])}."""
    tree: dict[str, tuple[str, list[str]]] = {}
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, parser in action.choices.items():
                opts = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
                tree[name] = (helps.get(name, ""), opts)
    return tree


def bash(root: argparse.ArgumentParser) -> str:
    tree = _tree(root)
    cases = "\n".join(f'        {name}) opts="{" ".join(opts + CHOICES_OF.get(name, []))}" ;;'
                      for name, (_, opts) in tree.items())
    return f"""# hpgc completion for bash: eval "$(hpgc completion bash)"
_hpgc() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{" ".join(tree)} --help" -- "$cur"))
        return
    fi
    local opts=""
    case "${{COMP_WORDS[1]}}" in
{cases}
    esac
    if [[ "$cur" == -* || "${{COMP_WORDS[1]}}" == completion ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o default -F _hpgc hpgc
"""


def zsh(root: argparse.ArgumentParser) -> str:
    return ("# hpgc completion for zsh: eval \"$(hpgc completion zsh)\"\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash(root).split("\n", 1)[1])


def fish(root: argparse.ArgumentParser) -> str:
    lines = ["# hpgc completion for fish: hpgc completion fish | source", "complete -c hpgc -f"]
    for name, (text, opts) in _tree(root).items():
        quoted = text.replace("'", "\\'")
        lines.append(f"complete -c hpgc -n __fish_use_subcommand -a {name} -d '{quoted}'")
        for opt in opts:
            lines.append(f"complete -c hpgc -n '__fish_seen_subcommand_from {name}' -l {opt[2:]}")
        for choice in CHOICES_OF.get(name, []):
            lines.append(f"complete -c hpgc -n '__fish_seen_subcommand_from {name}' -a {choice}")
    return "\n".join(lines) + "\n"


def script(root: argparse.ArgumentParser, shell: str) -> str:
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](root)
