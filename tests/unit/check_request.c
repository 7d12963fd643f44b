#include "config.h"
#include "suites.h"
Suite *request_suite(void)
{
	Suite *s = suite_create("request");
	return s;
}
