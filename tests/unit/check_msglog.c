#include "config.h"
#include "suites.h"
Suite *msglog_suite(void)
{
	Suite *s = suite_create("msglog");
	return s;
}
