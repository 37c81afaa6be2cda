package commands

import (
	"sort"

	"bufio"
	"errors"
	"fmt"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/nook-containers/nook/builder"
	"github.com/nook-containers/nook/network"
	"github.com/nook-containers/nook/runner"
	"github.com/nook-containers/nook/store"
	"github.com/nook-containers/nook/userns"
)

func systemCommand() *cli.Command {
	return &cli.Command{
		Name:  "system",
		Usage: "manage nook's per-user state",
		Subcommands: []*cli.Command{
			{
				Name:      "df",
				Usage:     "show disk usage of images, containers and volumes",
				UsageText: "nook system df [--format TEMPLATE]",
				Flags:     []cli.Flag{formatFlag(), &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show each image"}},
				Action:    systemDF,
			},
			{
				Name:      "prune",
				Usage:     "remove stopped containers, unused networks, dangling images and the build cache",
				UsageText: "nook system prune [-a] [--volumes] [-f]",
				Description: `As docker: stopped containers, networks no container uses, dangling images
and the build cache; with -a every image no container uses; with --volumes
also anonymous volumes no container uses.

Examples:
  nook system prune -f
  nook system prune -a --volumes -f`,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "remove every image no container uses, not only dangling ones"},
					&cli.BoolFlag{Name: "volumes", Usage: "also remove anonymous volumes no container uses"},
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
				},
				Action: systemPrune,
			},
			{
				Name:      "reset",
				Usage:     "delete everything nook stored for this user",
				UsageText: "nook system reset [-f]",
				Description: `Removes every image, layer, container and volume of this user, and stops the
per-user namespace holder. The files belong to subordinate ids, so this is
done from inside the user's namespace.

Examples:
  nook system reset -f`,
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"}},
				Action: systemReset,
			},
		},
	}
}

// confirm asks on the command's input; anything but y/yes is no.
func confirm(c *cli.Context, warning string) bool {
	fmt.Fprintf(c.App.ErrWriter, "%s\nAre you sure you want to continue? [y/N] ", warning)
	line, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

func systemReset(c *cli.Context) error {
	if err := needsNamespace(c); err != nil {
		return err
	}
	o := storeOptions(c)
	if !c.Bool("force") && !confirm(c, fmt.Sprintf("WARNING! This will remove all of nook's images, containers and volumes in %s.", o.Root)) {
		return nil
	}
	s, err := store.Open(o)
	if err == nil {
		// Running containers and their monitors go first: their mounts
		// would keep the store busy, their leases the network.
		if rt, err := newRuntime(c, s, ""); err == nil {
			if cs, err := rt.List(); err == nil {
				for _, ctr := range cs {
					_ = rt.Remove(c.Context, ctr, runner.RemoveOptions{Force: true})
				}
			}
		}
		// Unmounts every mounted layer and container before the files go.
		_, _ = s.Storage().Shutdown(true)
	}
	// Whatever is still mounted below the store (a layer of a container
	// whose record was lost, the driver's own private mount) goes too.
	for _, dir := range []string{o.Root, o.RunRoot} {
		unmountUnder(dir)
	}
	for _, dir := range []string{o.Root, o.RunRoot} {
		if err := removeAllRetry(dir); err != nil {
			return fmt.Errorf("removing %s: %w", dir, err)
		}
	}
	if c.String("root") == "" {
		// The default store lives inside the data dir; remove nook's other
		// per-user state there too (volumes, containers, cache).
		if err := removeAllRetry(userns.DataDir()); err != nil {
			return fmt.Errorf("removing %s: %w", userns.DataDir(), err)
		}
	}
	if userns.Rootless() && c.String("root") == "" {
		// Only a reset of the default store ends the holder: a private
		// store (--root) may share it with other work.
		_ = userns.StopHolder()
		_ = os.RemoveAll(filepath.Join(userns.RuntimeDir(), "bin"))
	}
	return nil
}

// removeAllRetry is os.RemoveAll, tried again when a directory filled up
// while it was being emptied: another invocation that opens the store at
// that moment writes into it (the overlay driver's feature check makes a
// scratch directory in the store at every open).
func removeAllRetry(dir string) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = os.RemoveAll(dir); err == nil || !errors.Is(err, syscall.ENOTEMPTY) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// DFRow is one line of 'nook system df'.
type DFRow struct {
	Type        string
	TotalCount  int
	Active      int
	Size        string
	Reclaimable string
}

func systemDF(c *cli.Context) error {
	return withStore(c, func(s *store.Store) error {
		imgs, err := s.Images()
		if err != nil {
			return err
		}
		used, err := s.ImagesInUse()
		if err != nil {
			return err
		}
		var total, reclaim int64
		active := 0
		for _, im := range imgs {
			total += im.Size
			if used[im.ID] {
				active++
			} else {
				reclaim += im.Size
			}
		}
		rows := []DFRow{
			{Type: "Images", TotalCount: len(imgs), Active: active, Size: humanSize(total), Reclaimable: reclaimable(reclaim, total)},
			{Type: "Containers", Size: humanSize(0), Reclaimable: "0B"},
			{Type: "Local Volumes", Size: humanSize(0), Reclaimable: "0B"},
			{Type: "Build Cache", Size: humanSize(0), Reclaimable: "0B"},
		}
		if f := c.String("format"); f != "" {
			items := make([]any, len(rows))
			for i := range rows {
				items[i] = rows[i]
			}
			return printFormatted(c, f, items)
		}
		t := newTable(c.App.Writer, "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE")
		for _, r := range rows {
			t.row(r.Type, fmt.Sprint(r.TotalCount), fmt.Sprint(r.Active), r.Size, r.Reclaimable)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if c.Bool("verbose") {
			fmt.Fprintln(c.App.Writer, "\nImages space usage:")
			t := newTable(c.App.Writer, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
			for _, im := range imgs {
				for _, r := range imageRows(im, false) {
					t.row(r.Repository, r.Tag, r.ID, r.CreatedSince, r.Size)
				}
			}
			return t.flush()
		}
		return nil
	})
}

func reclaimable(r, total int64) string {
	if total == 0 {
		return humanSize(r)
	}
	return fmt.Sprintf("%s (%d%%)", humanSize(r), r*100/total)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		return
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		_ = unix.Unmount(m.Mountpoint, unix.MNT_DETACH)
	}
}

func systemPrune(c *cli.Context) error {
	what := "  - all stopped containers\n  - all networks not used by at least one container\n"
	if c.Bool("volumes") {
		what += "  - all anonymous volumes not used by at least one container\n"
	}
	if c.Bool("all") {
		what += "  - all images without at least one container associated to them\n"
	} else {
		what += "  - all dangling images\n"
	}
	what += "  - all build cache"
	if !c.Bool("force") && !confirm(c, "WARNING! This will remove:\n"+what) {
		return nil
	}
	w := c.App.Writer
	err := withStore(c, func(s *store.Store) error {
		rt, err := newRuntime(c, s, "")
		if err != nil {
			return err
		}
		cs, err := rt.List()
		if err != nil {
			return err
		}
		var deleted []string
		for _, ctr := range cs {
			if ctr.State.Active() {
				continue
			}
			if err := rt.Remove(c.Context, ctr, runner.RemoveOptions{}); err != nil {
				return fmt.Errorf("removing container %s: %w", ctr.Name, err)
			}
			deleted = append(deleted, ctr.ID)
		}
		if len(deleted) > 0 {
			fmt.Fprintln(w, "Deleted Containers:")
			for _, id := range deleted {
				fmt.Fprintln(w, id)
			}
			fmt.Fprintln(w)
		}
		if c.Bool("volumes") {
			names, err := rt.VolumePrune(false)
			if err != nil {
				return err
			}
			if len(names) > 0 {
				fmt.Fprintln(w, "Deleted Volumes:")
				for _, n := range names {
					fmt.Fprintln(w, n)
				}
				fmt.Fprintln(w)
			}
		}
		rep, err := builder.Prune(s)
		if err != nil {
			return err
		}
		res, err := s.PruneImages(c.Bool("all"))
		if res != nil {
			if len(res.Images) > 0 {
				fmt.Fprintln(w, "Deleted Images:")
				for _, id := range res.Images {
					fmt.Fprintln(w, "deleted: sha256:"+id)
				}
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "Total reclaimed space: %s\n", humanSize(res.SpaceReclaimed+rep.SpaceReclaimed))
		}
		return err
	})
	if err != nil {
		return err
	}
	m, err := networkManager(c)
	if err != nil {
		return err
	}
	removed, err := m.Prune(c.Context, func(*network.Network) bool { return true })
	if len(removed) > 0 {
		fmt.Fprintln(w, "Deleted Networks:")
		for _, r := range removed {
			fmt.Fprintln(w, r)
		}
	}
	return err
}
