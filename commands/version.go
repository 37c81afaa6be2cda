package commands

import (
	"runtime"

	"github.com/urfave/cli/v2"
)

// VersionInfo is what 'nook version' reports.
type VersionInfo struct {
	Version   string
	GoVersion string
	OS        string
	Arch      string
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "show the nook version",
		UsageText: "nook version [--format TEMPLATE]",
		Flags:     []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			v := VersionInfo{Version: Version, GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
			if c.String("format") != "" {
				return printFormatted(c, c.String("format"), []any{v})
			}
			return printKV(c.App.Writer, [][2]string{
				{"Version", v.Version}, {"Go version", v.GoVersion}, {"OS/Arch", v.OS + "/" + v.Arch},
			})
		},
	}
}
