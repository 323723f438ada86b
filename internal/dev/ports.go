package dev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/webhook"
)

// checkPorts tries every address the manager will listen on, before
// anything starts, and names the flag and the process of one that is
// taken.
func checkPorts(opts manager.Options, wopts webhook.Options) error {
	type addr struct{ flag, address string }
	host := wopts.Host
	addrs := []addr{
		{"--metrics-bind-address", opts.MetricsBindAddress},
		{"--health-probe-bind-address", opts.HealthProbeBindAddress},
	}
	if wopts.Enabled {
		addrs = append(addrs, addr{"--port", net.JoinHostPort(host, strconv.Itoa(wopts.Port))})
	}
	if opts.EnablePprof {
		addrs = append(addrs, addr{"--pprof-port", net.JoinHostPort("localhost", strconv.Itoa(opts.PprofPort))})
	}
	var errs []error
	for _, a := range addrs {
		if a.address == "" || a.address == "0" {
			continue
		}
		l, err := net.Listen("tcp", a.address)
		if err == nil {
			_ = l.Close()
			continue
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			errs = append(errs, fmt.Errorf("cannot listen on %s (%s): %w", a.address, a.flag, err))
			continue
		}
		_, port, _ := net.SplitHostPort(a.address)
		who := ""
		if p, err := strconv.Atoi(port); err == nil {
			who = portOwner(p)
		}
		errs = append(errs, fmt.Errorf("port %s (%s, after --) is already in use%s: pass another one, or stop what uses it", a.address, a.flag, who))
	}
	return errors.Join(errs...)
}

// portOwner names the process listening on a TCP port, as " by <name> (PID
// <pid>)"; "" when it cannot be told (another user's process, say).
func portOwner(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			fields := strings.Fields(l)
			// local_address is field 1 ("0100007F:1F90"), st field 3 ("0A" is
			// LISTEN), inode field 9.
			if len(fields) < 10 || fields[3] != "0A" {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	for _, pid := range pids() {
		fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
			if err == nil && inodes[target] {
				name := "a process"
				if args := cmdline(pid); len(args) > 0 {
					name = filepath.Base(args[0])
				}
				return fmt.Sprintf(" by %s (PID %d)", name, pid)
			}
		}
	}
	return ""
}
