// The idle warning (issue 3) goes here.
