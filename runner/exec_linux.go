package runner

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initProcess is a started container init, waiting for its configuration.
type initProcess struct {
	cmd     *exec.Cmd
	config  *os.File // our end of the configuration pipe
	status  *os.File // our end of the status pipe
	console *os.File // our end of the console socket (with a terminal)
	Pid     int
	Started time.Time
}

// initStdio are the descriptors the container's stdio starts as.
type initStdio struct {
	Stdin, Stdout, Stderr *os.File
}

// startInit starts nook's init in new namespaces. It is paused until
// sendConfig; the caller can attach a network to /proc/PID/ns/net and add
// the process to a cgroup meanwhile.
func startInit(ic *initConfig, stdio initStdio, scratch string, detachFromParent bool, netns *os.File) (*initProcess, error) {
	exe, err := sealedExe(scratch)
	if err != nil {
		return nil, err
	}
	// Descriptors this process inherited without close-on-exec must not
	// reach the container (CVE-2024-21626): mark them all.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stR, stW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, err
	}
	extra := []*os.File{cfgR, stW}
	var conParent, conChild *os.File
	if ic.Console {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("creating the console socket: %w", err)
		}
		conParent, conChild = os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console")
		extra = append(extra, conChild)
	}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	ic.JoinNetNS = false
	switch {
	case ic.HostNetwork:
	case netns != nil:
		// The init joins the namespace made ahead (fdNetNS).
		for len(extra) < fdNetNS-3 {
			extra = append(extra, nil)
		}
		extra = append(extra, netns)
		ic.JoinNetNS = true
	default:
		flags |= unix.CLONE_NEWNET
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       []string{initArg0},
		Env:        os.Environ(),
		Stdin:      stdio.Stdin,
		Stdout:     stdio.Stdout,
		Stderr:     stdio.Stderr,
		ExtraFiles: extra,
		Dir:        "/",
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			Setsid:     true,
		},
	}
	if !detachFromParent {
		// A foreground container dies with the nook that supervises it.
		cmd.SysProcAttr.Pdeathsig = unix.SIGKILL
	}
	closeAll := func() {
		for _, f := range []*os.File{cfgR, cfgW, stR, stW, conParent, conChild} {
			if f != nil {
				f.Close()
			}
		}
	}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("starting the container's init: %w", err)
	}
	cfgR.Close()
	stW.Close()
	if conChild != nil {
		conChild.Close()
	}
	return &initProcess{cmd: cmd, config: cfgW, status: stR, console: conParent, Pid: cmd.Process.Pid, Started: time.Now()}, nil
}

// sendConfig hands the init its configuration.
func (p *initProcess) sendConfig(ic *initConfig) error {
	b, err := json.Marshal(ic)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := p.config.Write(append(hdr[:], b...)); err != nil {
		return fmt.Errorf("sending the configuration to the container's init: %w", err)
	}
	return nil
}

// receiveConsole gets the pty master from the init.
func (p *initProcess) receiveConsole() (*os.File, error) {
	fd, err := recvTerminal(p.console, "the container's init")
	if err != nil {
		return nil, err
	}
	p.console.Close()
	p.console = nil
	return os.NewFile(uintptr(fd), "pty"), nil
}

// recvTerminal receives the pty master that who, at the other end of
// sock, hands over with SCM_RIGHTS.
func recvTerminal(sock *os.File, who string) (int, error) {
	buf := make([]byte, 16)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
	if err != nil {
		return -1, fmt.Errorf("receiving the terminal: %w", err)
	}
	if n == 0 || oobn == 0 {
		return -1, fmt.Errorf("%s ended before handing over its terminal", who)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, errors.New("receiving the terminal: bad control message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, errors.New("receiving the terminal: no descriptor")
	}
	return fds[0], nil
}

// resume lets an init that waits for its terminal go on.
func (p *initProcess) resume() error {
	_, err := p.config.Write([]byte{1})
	return err
}

// waitExec waits until the init has exec'd the command (nil) or failed
// (an *initError with the exit code to use).
func (p *initProcess) waitExec() error {
	p.config.Close()
	b, err := io.ReadAll(p.status)
	p.status.Close()
	if err != nil {
		return fmt.Errorf("reading the container's start-up status: %w", err)
	}
	if len(b) == 0 {
		return nil
	}
	var ie initError
	if err := json.Unmarshal(b, &ie); err != nil {
		return fmt.Errorf("the container's init failed: %s", b)
	}
	return &ie
}

// abort kills an init that has not started the command.
func (p *initProcess) abort() {
	_ = p.cmd.Process.Kill()
	_, _ = p.cmd.Process.Wait()
	for _, f := range []*os.File{p.config, p.status, p.console} {
		if f != nil {
			f.Close()
		}
	}
}

// wait waits for the container's pid 1 to end and returns its exit code
// (128+N for signal N, as docker).
func (p *initProcess) wait() (int, string) {
	err := p.cmd.Wait()
	ps := p.cmd.ProcessState
	if ps == nil {
		return codeFailed, ""
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	if err != nil && ps.ExitCode() < 0 {
		return codeFailed, ""
	}
	return ps.ExitCode(), ""
}
