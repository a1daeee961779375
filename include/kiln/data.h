/* kiln/data.h — see the issue-6 work; included by kiln.h. */
