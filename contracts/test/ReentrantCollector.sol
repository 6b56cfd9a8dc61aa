// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title A hostile deposit collector, for tests only
/// @notice Called by the settlement contract during `deposit`, it calls back into the
/// settlement contract before paying, to show that the reentrancy guard refuses it: with empty
/// `collectorData` straight into `settle`, otherwise through `multicall` (the one entry point
/// without a guard of its own: its delegatecalls must meet the same lock). It never moves
/// tokens.
contract ReentrantCollector {
    function collect(address, address token, uint256, bytes32, bytes calldata collectorData) external {
        bytes memory reentry = abi.encodeWithSignature("settle(address,address)", address(this), token);
        if (collectorData.length != 0) {
            bytes[] memory calls = new bytes[](1);
            calls[0] = reentry;
            reentry = abi.encodeWithSignature("multicall(bytes[])", calls);
        }
        (bool ok, bytes memory reason) = msg.sender.call(reentry);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(reason, 32), mload(reason))
            }
        }
    }
}
