package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script for bash, zsh or fish",
	UsageText: "tokenseal completion bash|zsh|fish",
	Description: `Load it in the current shell, or install it once:

   bash:  source <(tokenseal completion bash)
          tokenseal completion bash > ~/.local/share/bash-completion/completions/tokenseal
   zsh:   tokenseal completion zsh > "${fpath[1]}/_tokenseal"   (then restart zsh)
   fish:  tokenseal completion fish > ~/.config/fish/completions/tokenseal.fish

The bash and zsh scripts ask tokenseal itself for the words that fit
(the hidden --generate-bash-completion flag), so they follow the commands
and flags of the tokenseal they call; the fish script lists them.`,
	Action: completionAction,
}

func completionAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("completion takes one shell: bash, zsh or fish")
	}
	var script string
	switch shell := c.Args().First(); shell {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		s, err := c.App.ToFishCompletion()
		if err != nil {
			return fmt.Errorf("fish completion: %w", err)
		}
		// Usage lines mark placeholders with backquotes (`FILE`) for
		// --help; fish would show them as they are.
		script = strings.ReplaceAll(s, "`", "")
	default:
		return usageErrorf("unknown shell %q: bash, zsh or fish", shell)
	}
	_, err := fmt.Fprint(c.App.Writer, script)
	return err
}

// bashCompletion runs the command line typed so far with
// --generate-bash-completion (urfave/cli's protocol) and falls back to
// file names when tokenseal offers nothing, as for input files.
const bashCompletion = `# bash completion for tokenseal
_tokenseal() {
    local cur words
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    words=("${COMP_WORDS[@]:0:COMP_CWORD}")
    local opts
    if [[ "$cur" == -* ]]; then
        opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
    fi
    local IFS=$'\n'
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return 0
}
complete -o bashdefault -o default -F _tokenseal tokenseal
`

// zshCompletion works both sourced and installed as _tokenseal in $fpath.
const zshCompletion = `#compdef tokenseal
# zsh completion for tokenseal
_tokenseal() {
    local -a opts
    local cur=${words[-1]}
    if [[ "$cur" == -* ]]; then
        opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
    else
        opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
    fi
    if [[ -n "${opts[1]}" ]]; then
        _describe 'values' opts
    else
        _files
    fi
}
if [[ "${funcstack[1]}" == "_tokenseal" ]]; then
    _tokenseal "$@"
else
    compdef _tokenseal tokenseal
fi
`
