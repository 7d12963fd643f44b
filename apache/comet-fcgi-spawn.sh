#!/bin/sh
# Start comet-fcgi as a standalone FastCGI daemon with spawn-fcgi (Debian
# package spawn-fcgi), for mod_proxy_fcgi: spawn-fcgi opens the
# socket and hands it over on descriptor 0, as a web server would. One
# process (-F 1) is right: it holds every waiting request on one event loop.
# The program reads its settings file itself (COMET_DB, the keys: see
# comet-fcgi(8)); a COMET_* variable exported here wins over the file, e.g.
# export COMET_LOG=syslog
exec spawn-fcgi -a 127.0.0.1 -p 9000 -F 1 -u www-data -g www-data \
	-P /run/comet-fcgi.pid -- /usr/local/bin/comet-fcgi
