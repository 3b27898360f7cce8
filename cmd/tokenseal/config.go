package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/tokenseal/tokenseal/token"
)

var flagConfig = &cli.StringFlag{
	Name:    "config",
	Usage:   "read default settings from `FILE` (default $XDG_CONFIG_HOME/tokenseal/config, else ~/.config/tokenseal/config)",
	EnvVars: []string{"TOKENSEAL_CONFIG"},
}

// configKeys are the settings a config file may hold. Each is the name of
// a string flag; a command that has the flag takes the value from the file
// when neither the flag nor its environment variable gave one.
var configKeys = []string{"module", "token", "token-serial", "token-slot", "pin-file", "sign-with", "to-self", "state-dir", "state-url", "format"}

// configPathKeys are the keys whose values are file paths: "~/" is the
// home directory and a relative path is relative to the config file.
var configPathKeys = []string{"module", "pin-file", "state-dir"}

// configError is a config file that cannot be read or used (exit 1).
type configError struct {
	path string
	line int // 0: the file as a whole
	msg  string
	err  error
}

func (e *configError) Error() string {
	where := "config " + e.path
	if e.line > 0 {
		where = fmt.Sprintf("%s:%d", where, e.line)
	}
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", where, e.msg, e.err)
	}
	return where + ": " + e.msg
}

func (e *configError) Unwrap() error { return e.err }

// fileConfig is a parsed config file.
type fileConfig struct {
	path   string
	values map[string]string // by flag name
}

// parseConfig parses a config file: one "key = value" a line, blank lines
// and lines starting with # ignored. An unquoted value ends at a " #"
// comment; a value in double quotes is taken as it is. Keys are those of
// configKeys (an underscore may stand for a hyphen); a key naming a PIN is
// refused, since the file is not a place for secrets.
func parseConfig(path string, data []byte) (*fileConfig, error) {
	cfg := &fileConfig{path: path, values: map[string]string{}}
	home, _ := os.UserHomeDir()
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		bad := func(format string, a ...any) error {
			return &configError{path: path, line: n, msg: fmt.Sprintf(format, a...)}
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, bad("expected key = value")
		}
		key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "_", "-")
		switch {
		case slices.Contains(configKeys, key):
		case strings.Contains(key, "pin") && !strings.HasSuffix(key, "-file"):
			return nil, bad("%s: a PIN is never kept in the config file; use pin-file = FILE (a file only you can read) or TOKENSEAL_PIN", key)
		default:
			return nil, bad("unknown key %q (known: %s)", key, strings.Join(configKeys, ", "))
		}
		if _, dup := cfg.values[key]; dup {
			return nil, bad("%s given twice", key)
		}
		val, err := configValue(strings.TrimSpace(v))
		if err != nil {
			return nil, bad("%s: %v", key, err)
		}
		if val == "" {
			return nil, bad("%s: empty value", key)
		}
		if slices.Contains(configPathKeys, key) {
			if rest, ok := strings.CutPrefix(val, "~/"); ok {
				if home == "" {
					return nil, bad("%s: no home directory for ~/", key)
				}
				val = filepath.Join(home, rest)
			} else if !filepath.IsAbs(val) {
				val = filepath.Join(filepath.Dir(path), val)
			}
		}
		cfg.values[key] = val
	}
	if err := sc.Err(); err != nil {
		return nil, &configError{path: path, msg: "reading", err: err}
	}
	return cfg, nil
}

// configValue unquotes a value and strips a trailing " # comment".
func configValue(v string) (string, error) {
	if rest, ok := strings.CutPrefix(v, `"`); ok {
		val, after, ok := strings.Cut(rest, `"`)
		if !ok {
			return "", errors.New("unterminated quote")
		}
		if after = strings.TrimSpace(after); after != "" && !strings.HasPrefix(after, "#") {
			return "", errors.New("text after the closing quote")
		}
		return val, nil
	}
	if i := strings.Index(v, "#"); i > 0 && (v[i-1] == ' ' || v[i-1] == '\t') {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}

// defaultConfigPath is $XDG_CONFIG_HOME/tokenseal/config, else
// ~/.config/tokenseal/config; "" when there is neither.
func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "tokenseal", "config")
}

// loadConfig reads --config (or TOKENSEAL_CONFIG), which must be readable,
// else the default config file if there is one. It returns nil without a
// config file.
func loadConfig(explicit string) (*fileConfig, error) {
	path := explicit
	if path == "" {
		if path = defaultConfigPath(); path == "" {
			return nil, nil
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if explicit == "" && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &configError{path: path, msg: "cannot read it", err: errors.Unwrap(err)}
	}
	// Whoever can rewrite the config file chooses the module, which gets
	// the PIN.
	if err := token.CheckNotWritable("config file", path); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	return parseConfig(path, data)
}

// App metadata: the config file read, the flags it set, and the flags
// the command line gave (see levelOf).
const (
	configMetadataKey     = "tokenseal.config"
	fromConfigMetadataKey = "tokenseal.from-config"
	typedMetadataKey      = "tokenseal.typed"
)

// level is where a setting came from; a higher level wins (flag >
// environment > config file > default).
type level int

const (
	levelDefault level = iota
	levelConfig
	levelEnv
	levelFlag
)

// levelOf says where the value of the string flag name came from:
// levelDefault when it is empty.
func levelOf(c *cli.Context, name string) level {
	if c.String(name) == "" {
		return levelDefault
	}
	if m, _ := c.App.Metadata[fromConfigMetadataKey].(map[string]bool); m[name] {
		return levelConfig
	}
	if m, _ := c.App.Metadata[typedMetadataKey].(map[string]bool); m[name] {
		return levelFlag
	}
	return levelEnv
}

// applyConfig sets the string flags of the running command from the
// config file when neither the command line nor the environment gave them
// a value: flag > environment > config file > default. It runs as the
// Before hook of the program and of every command (see withConfig), so a
// command sees the file's values for the flags it has, global or its own.
// An empty flag or environment value counts as not given.
func applyConfig(c *cli.Context) error {
	cfg, err := configFor(c)
	if err != nil || cfg == nil {
		return err
	}
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	for _, f := range flags {
		sf, ok := f.(*cli.StringFlag)
		if !ok {
			continue
		}
		v, ok := cfg.values[sf.Name]
		if !ok || c.String(sf.Name) != "" {
			continue
		}
		if err := c.Set(sf.Name, v); err != nil {
			return &configError{path: cfg.path, msg: sf.Name, err: err}
		}
		from, _ := c.App.Metadata[fromConfigMetadataKey].(map[string]bool)
		if from == nil {
			from = map[string]bool{}
			c.App.Metadata[fromConfigMetadataKey] = from
		}
		from[sf.Name] = true
		slog.Debug("setting from config file", "flag", sf.Name, "value", v, "config", cfg.path)
	}
	return nil
}

// configFor loads the config file once per run and keeps it in the app's
// metadata.
func configFor(c *cli.Context) (*fileConfig, error) {
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	if v, ok := c.App.Metadata[configMetadataKey]; ok {
		cfg, _ := v.(*fileConfig)
		return cfg, nil
	}
	cfg, err := loadConfig(c.String("config"))
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		slog.Debug("config file", "path", cfg.path)
	}
	c.App.Metadata[configMetadataKey] = cfg
	return cfg, nil
}

// configHooked records the commands withConfig has hooked: most command
// values are package variables shared by every newApp in a process.
var configHooked sync.Map // *cli.Command -> struct{}

// withConfig makes every command in the tree apply the config file to its
// own flags before it runs. Commands added to the table later are covered
// too, since newApp calls this on the finished tree.
func withConfig(cmds []*cli.Command) {
	for _, cmd := range cmds {
		if _, done := configHooked.LoadOrStore(cmd, struct{}{}); done {
			continue
		}
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if err := applyConfig(c); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
		withConfig(cmd.Subcommands)
	}
}
