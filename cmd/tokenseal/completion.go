package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script for bash, zsh or fish",
	UsageText: "tokenseal completion bash|zsh|fish",
	Description: `Load it in the current shell, or install it once (make install does):

   bash:  source <(tokenseal completion bash)
          tokenseal completion bash > ~/.local/share/bash-completion/completions/tokenseal
   zsh:   tokenseal completion zsh > "${fpath[1]}/_tokenseal"   (then restart zsh)
   fish:  tokenseal completion fish > ~/.config/fish/completions/tokenseal.fish

The scripts ask the tokenseal they complete for the words that fit, so
they follow its commands and flags: commands, flags, files for inputs,
outputs and recipients, key labels (from the token's public objects, no
PIN), token labels, and trusted names (from the state directory).`,
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
		script = fishCompletion
	default:
		return usageErrorf("unknown shell %q: bash, zsh or fish", shell)
	}
	_, err := fmt.Fprint(c.App.Writer, script)
	return err
}

// The scripts run `tokenseal __complete` (complete.go): candidates, one
// a line, then a directive line (:files, :dirs or :none).

// bashCompletion splits the line itself (COMP_WORDS would split
// token:LABEL at its colon), and trims what bash will not replace of a
// word with a colon, as bash-completion's __ltrim_colon_completions does.
const bashCompletion = `# bash completion for tokenseal
_tokenseal() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local -a words
    read -ra words <<< "$line"
    [[ "$line" == *[[:space:]] ]] && words+=("")
    local cword=$(( ${#words[@]} - 1 ))
    local cur="${words[cword]}"
    local IFS=$'\n'
    local -a out
    out=($("${words[0]}" __complete "${words[@]:1:cword}" 2>/dev/null))
    local n=${#out[@]}
    [[ $n -gt 0 ]] || return 0
    local directive="${out[n-1]}"
    unset "out[n-1]"
    COMPREPLY=()
    case "$directive" in
        :files) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
        :dirs) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null ;;
    esac
    COMPREPLY+=($(compgen -W "${out[*]}" -- "$cur"))
    if [[ "$cur" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then
        local colon="${cur%"${cur##*:}"}" i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]="${COMPREPLY[i]#"$colon"}"
        done
    fi
    return 0
}
complete -F _tokenseal tokenseal
`

// zshCompletion works both sourced and installed as _tokenseal in $fpath.
const zshCompletion = `#compdef tokenseal
# zsh completion for tokenseal
_tokenseal() {
    local -a out
    out=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    local directive=${out[-1]}
    out=("${(@)out[1,-2]}")
    case $directive in
        :files) _files ;;
        :dirs) _files -/ ;;
    esac
    (( ${#out} )) && compadd -- "${out[@]}"
    return 0
}
if [[ "${funcstack[1]}" == "_tokenseal" ]]; then
    _tokenseal "$@"
else
    compdef _tokenseal tokenseal
fi
`

const fishCompletion = `# fish completion for tokenseal
function __tokenseal_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l out ($words[1] __complete $words[2..-1] "$cur" 2>/dev/null)
    test (count $out) -gt 0; or return
    set -l directive $out[-1]
    set -e out[-1]
    switch $directive
        case :files
            __fish_complete_path "$cur"
        case :dirs
            __fish_complete_directories "$cur"
    end
    printf '%s\n' $out
end
complete -c tokenseal -f -a '(__tokenseal_complete)'
`
