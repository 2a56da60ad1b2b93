package aesgcm

// ReadKeyFile reads a master key file other than the data directory's, such
// as the copy that "livehooks backup" keeps beside a backup. Like LoadKey it
// refuses a file that group or others may access.
func ReadKeyFile(path string) ([]byte, error) { return readKeyFile(path, "master key") }
