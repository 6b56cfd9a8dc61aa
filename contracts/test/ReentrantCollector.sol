// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title A hostile deposit collector, for tests only
/// @notice Called by the settlement contract during `deposit`, it calls back into the
/// settlement contract (`settle`, any guarded entry point) before paying, to show that the
/// reentrancy guard refuses it. It never moves tokens.
contract ReentrantCollector {
    function collect(address, address token, uint256, bytes32, bytes calldata) external {
        (bool ok, bytes memory reason) = msg.sender.call(
            abi.encodeWithSignature("settle(address,address)", address(this), token)
        );
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(reason, 32), mload(reason))
            }
        }
    }
}
