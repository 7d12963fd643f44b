#include "config.h"
#include "suites.h"
Suite *misc_suite(void)
{
	Suite *s = suite_create("misc");
	return s;
}
