#include "config.h"
#include "suites.h"
Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	return s;
}
