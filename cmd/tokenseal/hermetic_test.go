package main

import "os"

// The tests must not read the config file of whoever runs them: in-process
// tests and the rig's processes get TOKENSEAL_CONFIG=/dev/null.
// testscript children (they have $WORK) keep the script's environment, so
// config.txtar can test the default config file.
func init() {
	if os.Getenv("WORK") == "" && os.Getenv("TOKENSEAL_CONFIG") == "" {
		os.Setenv("TOKENSEAL_CONFIG", os.DevNull)
	}
}
