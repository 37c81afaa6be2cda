package commands

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

const bashCompletion = `# bash completion for nook
_nook_complete() {
  local cur opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == "-"* ]]; then
    opts=$( "${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null )
  else
    opts=$( "${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null )
  fi
  COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
  return 0
}
complete -o bashdefault -o default -F _nook_complete nook
`

const zshCompletion = `#compdef nook
_nook() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _nook nook
`

const fishCompletion = `# fish completion for nook
function __nook_complete
    set -l args (commandline -opc)
    eval $args --generate-bash-completion 2>/dev/null
end
complete -c nook -f -a '(__nook_complete)'
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		UsageText: "nook completion bash|zsh|fish",
		Description: `Examples:
  source <(nook completion bash)
  nook completion zsh > "${fpath[1]}/_nook"
  nook completion fish > ~/.config/fish/completions/nook.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "completion needs exactly one shell: bash, zsh or fish")
			}
			var s string
			switch c.Args().First() {
			case "bash":
				s = bashCompletion
			case "zsh":
				s = zshCompletion
			case "fish":
				s = fishCompletion
			default:
				return usageError(c, "unknown shell %q: use bash, zsh or fish", c.Args().First())
			}
			_, err := fmt.Fprint(c.App.Writer, s)
			return err
		},
	}
}
