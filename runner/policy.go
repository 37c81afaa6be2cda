package runner

import (
	"fmt"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
)

// RestartPolicy is docker's HostConfig.RestartPolicy.
type RestartPolicy struct {
	Name              string `json:"Name"` // "no", "always", "unless-stopped", "on-failure"
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// ParseRestartPolicy parses --restart with docker's rules.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := RestartPolicy{Name: name}
	switch name {
	case "", "no":
		p.Name = "no"
		if hasCount {
			return p, fmt.Errorf("invalid restart policy %q: a maximum retry count applies to on-failure only", s)
		}
	case "always", "unless-stopped":
		if hasCount {
			return p, fmt.Errorf("invalid restart policy %q: a maximum retry count cannot be used with restart policy %q", s, name)
		}
	case "on-failure":
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil {
				return p, fmt.Errorf("invalid restart policy %q: the maximum retry count must be a number", s)
			}
			if n < 0 {
				return p, fmt.Errorf("invalid restart policy %q: the maximum retry count cannot be negative", s)
			}
			p.MaximumRetryCount = n
		}
	default:
		return p, fmt.Errorf("invalid restart policy %q: use no, always, unless-stopped or on-failure[:max-retries]", s)
	}
	return p, nil
}

// String is the policy as --restart takes it (the monitor's argument).
func (p RestartPolicy) String() string {
	if p.Name == "on-failure" && p.MaximumRetryCount > 0 {
		return fmt.Sprintf("on-failure:%d", p.MaximumRetryCount)
	}
	return p.Name
}

// LogConfig is where a detached container's output goes.
type LogConfig struct {
	Type    string            `json:"Type"` // "json-file" or "none"
	Config  map[string]string `json:"Config"`
	MaxSize int64             `json:"-"` // bytes per file; 0: unlimited
	MaxFile int               `json:"-"` // files kept, the current one included
}

// ParseLogConfig checks --log-driver and --log-opt: the json-file driver
// (docker's default) with max-size and max-file, or none.
func ParseLogConfig(driver string, opts map[string]string) (LogConfig, error) {
	lc := LogConfig{Type: driver, Config: map[string]string{}, MaxFile: 1}
	switch driver {
	case "", "json-file":
		lc.Type = "json-file"
	case "none":
		if len(opts) > 0 {
			return lc, fmt.Errorf("the log driver none takes no --log-opt")
		}
		return lc, nil
	default:
		return lc, fmt.Errorf("log driver %q is not available: nook writes json-file logs (or none)", driver)
	}
	for k, v := range opts {
		lc.Config[k] = v
		switch k {
		case "max-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return lc, fmt.Errorf("invalid --log-opt max-size=%s: %w", v, err)
			}
			if n > 0 {
				lc.MaxSize = n
			}
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return lc, fmt.Errorf("invalid --log-opt max-file=%s: it must be a number of at least 1", v)
			}
			lc.MaxFile = n
		default:
			return lc, fmt.Errorf("unknown --log-opt %q for the json-file driver: max-size and max-file are supported", k)
		}
	}
	if _, ok := opts["max-file"]; ok && lc.MaxSize == 0 {
		return lc, fmt.Errorf("--log-opt max-file needs max-size")
	}
	return lc, nil
}
