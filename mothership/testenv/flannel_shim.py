"""Lets flannel's Tencent Cloud backend build from what the module proxy serves.

flannel's main imports every backend; its `tencent-vpc` backend imports
`.../tencentcloud/vpc/v20170312`, which flannel's go.mod takes from the split module
`github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc`, refused by the module proxy
at every version. The same package is also in the SDK's monolithic module
`github.com/tencentcloud/tencentcloud-sdk-go`, which the proxy serves. Replacing the split
module with an empty local one (a go.mod and nothing else) makes Go resolve the package
from the monolithic module instead. No code of ours stands in for the SDK.
"""

from __future__ import annotations

MODULE = "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc"
DIR = "tencentcloud-vpc-empty"

GO_MOD = f"module {MODULE}\n\ngo 1.21\n"

FILES: tuple[tuple[str, str], ...] = (("go.mod", GO_MOD),)
