// Package pagecache tells tests which pages of a file are in the kernel's page cache
// (mincore(2)), on Linux.
package pagecache
